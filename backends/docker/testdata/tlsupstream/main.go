// Command tlsupstream is the interception test's destination: an HTTPS
// server (HTTP/1.1 and HTTP/2) with the certificate and key it is given,
// that answers every request with "ok METHOD PATH", except under /v1/,
// where it wants the Authorization header it is told and answers 401
// without it. It logs each request's method, path and whether it was
// authorized, never a header's value.
//
//	tlsupstream -addr :8443 -cert cert.pem -key key.pem -auth-file auth
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	addr := flag.String("addr", ":8443", "listen address")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "key (PEM)")
	authFile := flag.String("auth-file", "", "file holding the Authorization header /v1/ wants")
	flag.Parse()
	want, err := os.ReadFile(*authFile)
	if err != nil {
		log.Fatal(err)
	}
	wantAuth := strings.TrimSpace(string(want))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		authorized := r.Header.Get("Authorization") == wantAuth
		log.Printf("%s %s %s authorized=%v", r.Proto, r.Method, r.URL.Path, authorized)
		if strings.HasPrefix(r.URL.Path, "/v1/") && !authorized {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "ok %s %s", r.Method, r.URL.Path)
	})
	log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, nil))
}
