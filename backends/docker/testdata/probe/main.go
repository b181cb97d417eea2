// Command probe is the escape matrix's probe: a static program run inside
// the agent container that tries one way out and exits 0 when it got
// through, 1 when it was stopped, 2 on bad usage.
//
//	probe tcp HOST:PORT            connect over TCP
//	probe udp-dns SERVER:PORT NAME send a DNS query, wait for any answer
//	probe resolve NAME             resolve NAME with the container's resolver
//	probe http URL                 GET URL through $HTTP(S)_PROXY; prints the status and body
//	probe request METHOD URL [NAME:VALUE...]
//	                               the same with any method and headers
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const timeout = 4 * time.Second

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe tcp|udp-dns|resolve|http ARGS")
		os.Exit(2)
	}
	err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Println("blocked:", err)
		os.Exit(1)
	}
	fmt.Println("reached")
}

func run(kind string, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch kind {
	case "tcp":
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", args[0])
		if err != nil {
			return err
		}
		return c.Close()
	case "udp-dns":
		return udpDNS(ctx, args[0], args[1])
	case "resolve":
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	case "http", "request":
		method := http.MethodGet
		if kind == "request" {
			if len(args) < 2 {
				return fmt.Errorf("usage: probe request METHOD URL [NAME:VALUE...]")
			}
			method, args = args[0], args[1:]
		}
		req, err := http.NewRequestWithContext(ctx, method, args[0], nil)
		if err != nil {
			return err
		}
		for _, h := range args[1:] {
			name, value, _ := strings.Cut(h, ":")
			req.Header.Set(name, strings.TrimSpace(value))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Printf("status %d\n%s", resp.StatusCode, body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown probe %q", kind)
}

// udpDNS sends one A query for name to server and waits for any reply.
func udpDNS(ctx context.Context, server, name string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "udp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	var id [2]byte
	rand.Read(id[:])
	q := append([]byte{id[0], id[1], 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, encodeName(name)...)
	q = binary.BigEndian.AppendUint16(q, 1) // A
	q = binary.BigEndian.AppendUint16(q, 1) // IN
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if n < 12 || buf[0] != id[0] || buf[1] != id[1] {
		return fmt.Errorf("malformed reply")
	}
	if rcode := buf[3] & 0x0f; rcode != 0 {
		return fmt.Errorf("DNS error code %d", rcode)
	}
	if binary.BigEndian.Uint16(buf[6:8]) == 0 {
		return fmt.Errorf("no answer")
	}
	return nil
}

func encodeName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}
