//go:build unix

package egress

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"io"
	"syscall"
	"testing"
	"time"
)

// benchBodies are 1 MiB request bodies of the kinds an agent sends: a
// model API request (one line of JSON holding source code), source code
// as a file upload, random base64 (an encoded file in JSON), and numeric
// CSV (a data upload).
func benchBodies(b *testing.B) []struct {
	name string
	body []byte
} {
	const size = 1 << 20
	random := make([]byte, size)
	rand.Read(random)
	return []struct {
		name string
		body []byte
	}{
		{"json", jsonBody(b, 2*size)[:size]},
		{"source", goSource(b, size)},
		{"base64", []byte(base64.StdEncoding.EncodeToString(random)[:size])},
		{"csv", csvBody(size)},
	}
}

// cpuTime is the CPU time the process has used, in all its threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDLPBody reads each body through the DLP's body scanner and, as
// the baseline in the same run, through a plain io.Copy; gzip is the JSON
// body sent gzip-compressed, scanned decoded. Besides MB/s it reports the
// process's CPU seconds per GiB of body (cpu-s/GiB), the cost of
// inspection on the proxy's host.
func BenchmarkDLPBody(b *testing.B) {
	d := newDLP(b, map[string]string{"API_KEY": "sk-" + fakePAT(b)})
	type run struct {
		name string
		body []byte
		size int // bytes scanned: the body's, decoded
		read func(io.Reader) io.Reader
	}
	var runs []run
	for _, bb := range benchBodies(b) {
		runs = append(runs,
			run{bb.name + "/copy", bb.body, len(bb.body), func(r io.Reader) io.Reader { return r }},
			run{bb.name + "/dlp", bb.body, len(bb.body), func(r io.Reader) io.Reader { return d.Body(r, nil) }})
		if bb.name == "json" {
			gz := gzipped(b, gzip.DefaultCompression, bb.body)
			runs = append(runs, run{"json-gzip/dlp", gz, len(bb.body), func(r io.Reader) io.Reader {
				er, err := d.EncodedBody(r, "gzip", nil)
				if err != nil {
					b.Fatal(err)
				}
				return er
			}})
		}
	}
	for _, r := range runs {
		b.Run(r.name, func(b *testing.B) {
			b.SetBytes(int64(r.size))
			n := 0
			cpu := cpuTime(b)
			for b.Loop() {
				n++
				// The struct hides bytes.Reader's WriteTo: both runs copy
				// through io.Discard's buffer, as a proxy copies a body.
				if _, err := io.Copy(io.Discard, struct{ io.Reader }{r.read(bytes.NewReader(r.body))}); err != nil {
					b.Fatal(err)
				}
			}
			used := cpuTime(b) - cpu
			b.ReportMetric(used.Seconds()/(float64(n)*float64(r.size))*(1<<30), "cpu-s/GiB")
		})
	}
}
