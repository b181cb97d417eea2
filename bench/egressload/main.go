// Command egressload is the load side of bench/egress.sh: an upstream
// server, a client that measures forward proxies and direct connections
// in turn and prints each one's figures as a JSON line, and a table of
// such lines.
//
//	egressload upstream -raw ADDR -http ADDR
//	egressload measure -target NAME[,PROXY,PID] ... -host NAME -raw-port N -http-port N
//	egressload table [FILE]
//
// The upstream's raw port speaks a one-byte protocol: 'D' and a big-endian
// uint64 n sends n bytes and closes; 'E' echoes until the end of stream;
// anything else, or nothing, is read and dropped until the end of stream.
// Its HTTP port answers every request with a small fixed body. Downloads
// are sent with sendfile and received with splice into /dev/null, so that
// the proxy, not the ends, is what the figures measure.
//
// It only ever connects to the addresses it is given; the script runs it
// in a network namespace of its own.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: egressload upstream|measure|table [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "upstream":
		err = upstream(args[1:])
	case "measure":
		err = measure(args[1:])
	case "table":
		err = table(args[1:])
	default:
		err = fmt.Errorf("unknown command %q; want upstream, measure or table", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "egressload:", err)
		return 1
	}
	return 0
}

// body is what the upstream's HTTP port answers.
var body = []byte(strings.Repeat("bottle egress bench\n", 16))

func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	rawAddr := fs.String("raw", "127.0.0.1:9000", "address of the raw port")
	httpAddr := fs.String("http", "127.0.0.1:9080", "address of the HTTP port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("zeros", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	if err := unix.Ftruncate(fd, zerosSize); err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	zeros = fmt.Sprintf("/proc/self/fd/%d", fd)
	rl, err := net.Listen("tcp", *rawAddr)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})}
	go srv.Serve(hl)
	for {
		c, err := rl.Accept()
		if err != nil {
			return err
		}
		go serveRaw(c)
	}
}

// zeros names a file of zerosSize zero bytes in memory that the upstream
// sends its downloads from.
var zeros string

const zerosSize = 64 << 20

func serveRaw(c net.Conn) {
	defer c.Close()
	var cmd [9]byte
	if _, err := io.ReadFull(c, cmd[:1]); err != nil {
		return
	}
	switch cmd[0] {
	case 'D':
		if _, err := io.ReadFull(c, cmd[1:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(cmd[1:]))
		// sendfile from a file in memory, so that the upstream
		// costs as little CPU as it can; opened again for an offset
		// of this connection's own.
		f, err := os.Open(zeros)
		if err != nil {
			return
		}
		defer f.Close()
		for n > 0 {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return
			}
			m, err := io.Copy(c, io.LimitReader(f, min(n, zerosSize)))
			if err != nil || m == 0 {
				return
			}
			n -= m
		}
	case 'E':
		io.Copy(c, c)
	default:
		io.Copy(io.Discard, c)
	}
}

// Result is one target's figures: one JSON line of measure's output.
type Result struct {
	Name string `json:"name"`
	// MBps and CPUPerGiB are the median download rate through a fresh
	// tunnel and the proxy's CPU seconds per GiB moved.
	MBps      float64 `json:"mbps"`
	CPUPerGiB float64 `json:"cpu_s_per_gib"`
	// ConnectP50 and ConnectP99 are the time to a usable tunnel in µs,
	// DirectP50 and DirectP99 that of a direct connection, timed in turn
	// with them, and AddedP50 and AddedP99 the differences.
	ConnectP50 float64 `json:"connect_p50_us"`
	ConnectP99 float64 `json:"connect_p99_us"`
	DirectP50  float64 `json:"direct_p50_us"`
	DirectP99  float64 `json:"direct_p99_us"`
	AddedP50   float64 `json:"added_p50_us"`
	AddedP99   float64 `json:"added_p99_us"`
	// CPUPerConnect is the proxy's CPU time per tunnel opened and closed
	// in the latency test, in µs.
	CPUPerConnect float64 `json:"cpu_us_per_connect"`
	// RPS is plain-HTTP requests a second over kept-alive connections.
	RPS float64 `json:"rps"`
	// IdleTunnels were open during IdleMBps and IdleCPUPerGiB, the same
	// download measured again; IdleFDs is the proxy's open descriptors
	// with them open, before the downloads.
	IdleTunnels   int     `json:"idle_tunnels"`
	IdleMBps      float64 `json:"idle_mbps"`
	IdleCPUPerGiB float64 `json:"idle_cpu_s_per_gib"`
	IdleFDs       int     `json:"idle_fds"`
}

// target is a path to the upstream: a proxy, or direct when proxy is
// empty.
type target struct {
	name, proxy string
	pid         int // the proxy's, for its CPU time and descriptors

	// What the measurements gather.
	res          Result
	connect      []time.Duration
	rates, idle  []float64
	cpu, idleCPU float64
	requests     int64
	requestsTime time.Duration
	idleConns    []net.Conn
}

// targets is the -target flag: NAME, or NAME,PROXY,PID.
type targets []*target

func (ts *targets) String() string { return "" }

func (ts *targets) Set(s string) error {
	f := strings.Split(s, ",")
	t := &target{name: f[0], res: Result{Name: f[0]}}
	switch len(f) {
	case 1:
	case 3:
		t.proxy = f[1]
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("target %q: pid: %w", s, err)
		}
		t.pid = pid
	default:
		return fmt.Errorf("target %q: want NAME or NAME,PROXY,PID", s)
	}
	*ts = append(*ts, t)
	return nil
}

type config struct {
	targets           targets
	host              string
	rawPort, httpPort int
	bytes             int64
	rounds            int
	samples           int
	httpConns         int
	httpTime          time.Duration
	idle              int
}

// measure measures every target in turn, round by round, so that what
// else the machine does falls on all of them alike.
func measure(args []string) error {
	var c config
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	fs.Var(&c.targets, "target", "NAME for direct connections, or NAME,PROXY,PID for a proxy at PROXY (host:port) run by process PID; repeated")
	fs.StringVar(&c.host, "host", "upstream.bench.test", "the upstream's name, as the proxies resolve it")
	fs.IntVar(&c.rawPort, "raw-port", 9000, "the upstream's raw port")
	fs.IntVar(&c.httpPort, "http-port", 9080, "the upstream's HTTP port")
	fs.Int64Var(&c.bytes, "bytes", 1<<30, "bytes per download")
	fs.IntVar(&c.rounds, "rounds", 3, "downloads per target and figure; the median is reported")
	fs.IntVar(&c.samples, "samples", 1000, "connections timed per target for the latency figures")
	fs.IntVar(&c.httpConns, "http-conns", 4, "kept-alive connections for the request rate")
	fs.DurationVar(&c.httpTime, "http-time", 3*time.Second, "how long the request rate is measured per target")
	fs.IntVar(&c.idle, "idle", 200, "idle tunnels held open per proxy for the last figures; 0 skips them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(c.targets) == 0 {
		return errors.New("measure needs -target")
	}
	var err error
	if devNull, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
		return err
	}
	steps := []struct {
		what string
		run  func() error
	}{
		{"latency", c.latency},
		{"download", func() error { return c.downloads(false) }},
		{"requests", c.requests},
		{"idle tunnels", c.idleDownloads},
	}
	for _, s := range steps {
		fmt.Fprintln(os.Stderr, "measuring:", s.what)
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, t := range c.targets {
		if err := enc.Encode(t.res); err != nil {
			return err
		}
	}
	return nil
}

// rotated returns the targets in an order that starts one further on
// with every i, so that none is always measured first.
func (c *config) rotated(i int) []*target {
	n := len(c.targets)
	out := make([]*target, 0, n)
	for j := range n {
		out = append(out, c.targets[(i+j)%n])
	}
	return out
}

// open returns a connection to the upstream's raw port, through a CONNECT
// tunnel when t has a proxy.
func (c *config) open(t *target) (net.Conn, error) {
	if t.proxy == "" {
		return net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.rawPort)))
	}
	dest := net.JoinHostPort(c.host, strconv.Itoa(c.rawPort))
	conn, err := net.Dial("tcp", t.proxy)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dest, dest); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 256)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: CONNECT answer: %w", t.name, err)
	}
	if resp.StatusCode != http.StatusOK || br.Buffered() != 0 {
		conn.Close()
		return nil, fmt.Errorf("%s: CONNECT answered %s", t.name, resp.Status)
	}
	return conn, nil
}

// latency times c.samples connections per target, in turn, and a direct
// connection before every round of them. The first tenth warms up.
func (c *config) latency() error {
	if c.samples == 0 {
		return nil
	}
	direct := &target{name: "direct"}
	var d []time.Duration
	cpu0 := map[*target]float64{}
	for _, t := range c.targets {
		v, err := cpuSeconds(t.pid)
		if err != nil {
			return err
		}
		cpu0[t] = v
	}
	for i := range c.samples + c.samples/10 {
		for _, t := range append([]*target{direct}, c.rotated(i)...) {
			if t.proxy == "" && t != direct {
				continue
			}
			start := time.Now()
			conn, err := c.open(t)
			if err != nil {
				return err
			}
			elapsed := time.Since(start)
			conn.Close()
			if i < c.samples/10 {
				continue
			}
			if t == direct {
				d = append(d, elapsed)
			} else {
				t.connect = append(t.connect, elapsed)
			}
		}
	}
	// Give the last tunnels time to close before reading the CPU time.
	time.Sleep(100 * time.Millisecond)
	for _, t := range c.targets {
		r := &t.res
		r.DirectP50, r.DirectP99 = quantile(d, 0.50), quantile(d, 0.99)
		if t.proxy == "" {
			continue
		}
		cpu, err := cpuSeconds(t.pid)
		if err != nil {
			return err
		}
		r.CPUPerConnect = (cpu - cpu0[t]) * 1e6 / float64(c.samples+c.samples/10)
		r.ConnectP50, r.ConnectP99 = quantile(t.connect, 0.50), quantile(t.connect, 0.99)
		r.AddedP50, r.AddedP99 = r.ConnectP50-r.DirectP50, r.ConnectP99-r.DirectP99
	}
	return nil
}

// quantile returns the q quantile of d in µs.
func quantile(d []time.Duration, q float64) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(q*float64(len(d))))].Nanoseconds()) / 1e3
}

// devNull is where downloads go.
var devNull *os.File

// download fetches c.bytes through a fresh connection and returns the
// rate in MB/s from the first byte asked for, and the proxy's CPU seconds.
func (c *config) download(t *target) (mbps, cpu float64, err error) {
	conn, err := c.open(t)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	var cmd [9]byte
	cmd[0] = 'D'
	binary.BigEndian.PutUint64(cmd[1:], uint64(c.bytes))
	cpu0, err := cpuSeconds(t.pid)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if _, err := conn.Write(cmd[:]); err != nil {
		return 0, 0, err
	}
	// Spliced to /dev/null, so that the client costs as little CPU as it
	// can.
	n, err := io.Copy(devNull, conn)
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if n != c.bytes {
		return 0, 0, fmt.Errorf("%s: got %d bytes of %d", t.name, n, c.bytes)
	}
	cpu1, err := cpuSeconds(t.pid)
	if err != nil {
		return 0, 0, err
	}
	return float64(c.bytes) / 1e6 / elapsed.Seconds(), cpu1 - cpu0, nil
}

// downloads runs c.rounds rounds of one download per target (per proxy,
// with idle) and records the median rate and the CPU per GiB.
func (c *config) downloads(idle bool) error {
	for i := range c.rounds {
		for _, t := range c.rotated(i) {
			if idle && t.proxy == "" {
				continue
			}
			rate, cpu, err := c.download(t)
			if err != nil {
				return err
			}
			if idle {
				t.idle, t.idleCPU = append(t.idle, rate), t.idleCPU+cpu
			} else {
				t.rates, t.cpu = append(t.rates, rate), t.cpu+cpu
			}
		}
	}
	gib := float64(c.bytes) * float64(c.rounds) / (1 << 30)
	for _, t := range c.targets {
		if idle && t.proxy != "" {
			t.res.IdleMBps, t.res.IdleCPUPerGiB = median(t.idle), t.idleCPU/gib
		} else if !idle {
			t.res.MBps, t.res.CPUPerGiB = median(t.rates), t.cpu/gib
		}
	}
	return nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// cpuSeconds returns the user and system time of process pid and all its
// threads, or 0 for pid 0.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields start after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	// utime and stime are fields 14 and 15 of stat(5), 12 and 13 here.
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const ticks = 100 // USER_HZ on Linux
	return (utime + stime) / ticks, nil
}

// requests measures each target's plain-HTTP request rate in c.rounds
// turns of c.httpTime/c.rounds each.
func (c *config) requests() error {
	if c.httpConns == 0 {
		return nil
	}
	for i := range c.rounds {
		for _, t := range c.rotated(i) {
			n, d, err := c.requestRun(t, c.httpTime/time.Duration(c.rounds))
			if err != nil {
				return err
			}
			t.requests += n
			t.requestsTime += d
		}
	}
	for _, t := range c.targets {
		t.res.RPS = float64(t.requests) / t.requestsTime.Seconds()
	}
	return nil
}

// requestRun sends GETs over c.httpConns kept-alive connections for d,
// after a warm-up, and returns how many were answered in how long.
func (c *config) requestRun(t *target, d time.Duration) (int64, time.Duration, error) {
	dest := net.JoinHostPort(c.host, strconv.Itoa(c.httpPort))
	addr, url := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.httpPort)), "/"
	if t.proxy != "" {
		addr, url = t.proxy, "http://"+dest+"/"
	}
	req := []byte("GET " + url + " HTTP/1.1\r\nHost: " + dest + "\r\nUser-Agent: egressload\r\n\r\n")
	var done atomic.Int64
	var stop, counting atomic.Bool
	errs := make(chan error, c.httpConns)
	var wg sync.WaitGroup
	for range c.httpConns {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for !stop.Load() {
				if _, err := conn.Write(req); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: GET: %s, %v", t.name, resp.Status, err)
					return
				}
				if counting.Load() {
					done.Add(1)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	counting.Store(true)
	start := time.Now()
	time.Sleep(d)
	n := done.Load()
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	return n, elapsed, nil
}

// idleDownloads opens c.idle tunnels through every proxy, has each carry
// one echoed byte so that the proxy relays both directions, counts the
// proxies' descriptors and measures the downloads again while they stay
// open.
func (c *config) idleDownloads() error {
	if c.idle == 0 {
		return nil
	}
	defer func() {
		for _, t := range c.targets {
			for _, conn := range t.idleConns {
				conn.Close()
			}
		}
	}()
	for _, t := range c.targets {
		if t.proxy == "" {
			continue
		}
		for range c.idle {
			conn, err := c.open(t)
			if err != nil {
				return err
			}
			t.idleConns = append(t.idleConns, conn)
			if _, err := conn.Write([]byte("Ex")); err != nil {
				return err
			}
			var b [1]byte
			if _, err := io.ReadFull(conn, b[:]); err != nil || b[0] != 'x' {
				return fmt.Errorf("%s: echo: %q, %v", t.name, b, err)
			}
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", t.pid))
		if err != nil {
			return err
		}
		t.res.IdleTunnels, t.res.IdleFDs = c.idle, len(fds)
	}
	return c.downloads(true)
}

// table prints measure's lines as a table, with ratios to squid's
// figures, and, when bottles built at other revisions were measured, the
// working tree's figures over each of theirs.
func table(args []string) error {
	in := io.Reader(os.Stdin)
	if len(args) > 0 {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var rs []Result
	dec := json.NewDecoder(in)
	for {
		var r Result
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return errors.New("no results")
	}
	var squid, bottle *Result
	for i := range rs {
		switch rs[i].Name {
		case "squid":
			squid = &rs[i]
		case "bottle":
			bottle = &rs[i]
		}
	}
	// num formats v, and its ratio to squid's b when there is one.
	num := func(format string, v, b float64) string {
		s := fmt.Sprintf(format, v)
		if b != 0 {
			s += fmt.Sprintf(" (%.2fx)", v/b)
		}
		return s
	}
	rows := [][]string{{"target", "tunnel MB/s", "CPU s/GiB", "added p50 µs", "added p99 µs", "CPU µs/CONNECT", "HTTP req/s",
		"fds", "idle MB/s", "idle/single", "idle CPU s/GiB"}}
	for _, r := range rs {
		var b Result
		if squid != nil {
			b = *squid
		}
		row := []string{r.Name, num("%.0f", r.MBps, b.MBps), "-", "-", "-", "-", num("%.0f", r.RPS, b.RPS), "-", "-", "-", "-"}
		if r.CPUPerGiB > 0 {
			row[2] = num("%.2f", r.CPUPerGiB, b.CPUPerGiB)
		}
		if r.ConnectP50 > 0 {
			row[3] = num("%.0f", r.AddedP50, b.AddedP50)
			row[4] = num("%.0f", r.AddedP99, b.AddedP99)
			row[5] = num("%.0f", r.CPUPerConnect, b.CPUPerConnect)
		} else if r.DirectP50 > 0 {
			row[3] = fmt.Sprintf("(p50 %.0f)", r.DirectP50)
			row[4] = fmt.Sprintf("(p99 %.0f)", r.DirectP99)
		}
		if r.IdleTunnels > 0 {
			row[7] = strconv.Itoa(r.IdleFDs)
			row[8] = num("%.0f", r.IdleMBps, b.IdleMBps)
			row[9] = fmt.Sprintf("%.0f%%", 100*r.IdleMBps/r.MBps)
			row[10] = num("%.2f", r.IdleCPUPerGiB, b.IdleCPUPerGiB)
		}
		rows = append(rows, row)
	}
	printRows(rows)
	fmt.Printf("\n(Ratios to squid.) Direct connections take p50 %.0f µs, p99 %.0f µs; a proxy's added latency is its tunnel's time less that.\n", rs[0].DirectP50, rs[0].DirectP99)
	for _, r := range rs {
		if r.IdleTunnels > 0 {
			fmt.Printf("idle: the download with %d idle tunnels open through the same proxy; fds: the proxy's open descriptors then.\n", r.IdleTunnels)
			break
		}
	}
	if bottle == nil {
		return nil
	}
	ratio := func(v, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/b)
	}
	rows = [][]string{{"bottle over", "tunnel MB/s", "CPU s/GiB", "added p50 µs", "added p99 µs", "CPU µs/CONNECT", "HTTP req/s",
		"fds", "idle MB/s", "idle/single", "idle CPU s/GiB"}}
	for _, r := range rs {
		if !strings.HasPrefix(r.Name, "bottle@") {
			continue
		}
		b := *bottle
		rows = append(rows, []string{r.Name, ratio(b.MBps, r.MBps), ratio(b.CPUPerGiB, r.CPUPerGiB),
			ratio(b.AddedP50, r.AddedP50), ratio(b.AddedP99, r.AddedP99), ratio(b.CPUPerConnect, r.CPUPerConnect),
			ratio(b.RPS, r.RPS), ratio(float64(b.IdleFDs), float64(r.IdleFDs)), ratio(b.IdleMBps, r.IdleMBps),
			ratio(b.IdleMBps/b.MBps, r.IdleMBps/r.MBps), ratio(b.IdleCPUPerGiB, r.IdleCPUPerGiB)})
	}
	if len(rows) > 1 {
		fmt.Println()
		printRows(rows)
	}
	return nil
}

// printRows prints rows as columns, the first left-aligned and the rest
// right-aligned.
func printRows(rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			if i == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Println(b.String())
	}
}
