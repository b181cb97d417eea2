package gitgate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxPktData is the largest payload of one pkt-line (65520 bytes minus the
// 4-byte length prefix).
const maxPktData = 65516

// errFlush is returned by readPkt for a flush packet ("0000").
var errFlush = errors.New("flush packet")

// pktLine encodes data as one pkt-line. data must be at most maxPktData bytes.
func pktLine(data []byte) []byte {
	out := make([]byte, 4, 4+len(data))
	copy(out, fmt.Sprintf("%04x", len(data)+4))
	return append(out, data...)
}

// pktFlush is the flush packet.
var pktFlush = []byte("0000")

// readPkt reads one pkt-line and returns its payload, or errFlush for a
// flush packet. Delimiter and response-end packets are errors: the receive
// side of the v0/v1 push protocol does not use them.
func readPkt(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read pkt-line length: %w", err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return nil, fmt.Errorf("bad pkt-line length %q", hdr[:])
	}
	switch {
	case n == 0:
		return nil, errFlush
	case n < 4:
		return nil, fmt.Errorf("unexpected special packet %04x", n)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read pkt-line payload: %w", err)
	}
	return buf, nil
}

// sideband multiplexes receive-pack output: band 1 carries the report
// (itself pkt-lines), band 2 the messages the client prints as "remote:".
// Without the side-band-64k capability, messages are dropped (the client
// has nowhere to print them) and the report is written as is.
type sideband struct {
	w       io.Writer
	enabled bool
	err     error
	// clean, when set, withholds secrets from every message.
	clean func(string) string
}

func (s *sideband) write(band byte, data []byte) {
	if s.err != nil {
		return
	}
	if !s.enabled {
		if band == 1 {
			_, s.err = s.w.Write(data)
		}
		return
	}
	for len(data) > 0 {
		n := min(len(data), maxPktData-1)
		pkt := append([]byte{band}, data[:n]...)
		if _, s.err = s.w.Write(pktLine(pkt)); s.err != nil {
			return
		}
		data = data[n:]
	}
}

// message sends one line to the client's terminal as "remote: <line>".
func (s *sideband) message(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.clean != nil {
		msg = s.clean(msg)
	}
	s.write(2, []byte(msg+"\n"))
}

// finish ends the sideband stream with a flush packet.
func (s *sideband) finish() error {
	if s.enabled && s.err == nil {
		_, s.err = s.w.Write(pktFlush)
	}
	return s.err
}
