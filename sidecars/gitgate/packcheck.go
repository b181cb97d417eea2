package gitgate

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// checkPack copies a pushed pack from r to w and reads it on the way, in
// the format git's Documentation/gitformat-pack.txt describes: a "PACK"
// header with version 2 or 3 and an object count, then per object a
// type-and-size header, for a delta its base (an offset or an object
// name), and the zlib stream of its data, then a trailing checksum (which
// index-pack checks). It inflates every object to check that its data is
// no longer than its header says, and reads the result size each delta
// declares (the size index-pack allocates to apply it).
//
// It returns a *PushTooLargeError as soon as the objects' sizes, deltas
// counted at their result size, add up to more than limit: a pack of a few
// hundred bytes can otherwise make index-pack allocate gigabytes, and an
// object that no pushed ref reaches would never be counted later. Any
// other malformation is an error too; index-pack would refuse it anyway.
func checkPack(r io.Reader, w io.Writer, hashLen int, limit int64) error {
	br := bufio.NewReaderSize(io.TeeReader(r, w), 64<<10)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("read pack header: %w", err)
	}
	if !bytes.Equal(hdr[:4], []byte("PACK")) {
		return errors.New("not a pack")
	}
	if v := binary.BigEndian.Uint32(hdr[4:]); v != 2 && v != 3 {
		return fmt.Errorf("pack version %d", v)
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	var total int64
	tooLarge := func(n int64) error {
		if n > limit || total+n > limit {
			return &PushTooLargeError{Size: total + n, Limit: limit}
		}
		total += n
		return nil
	}
	for i := range count {
		kind, size, err := readObjectHeader(br)
		if err != nil {
			return fmt.Errorf("object %d: %w", i+1, err)
		}
		if err := tooLarge(size); err != nil {
			return err
		}
		switch kind {
		case 1, 2, 3, 4: // commit, tree, blob, tag
		case 6: // OFS_DELTA: a base offset, 7 bits a byte, high bit continues
			for {
				c, err := br.ReadByte()
				if err != nil {
					return fmt.Errorf("object %d: read delta base offset: %w", i+1, err)
				}
				if c&0x80 == 0 {
					break
				}
			}
		case 7: // REF_DELTA: the base object's name
			if _, err := br.Discard(hashLen); err != nil {
				return fmt.Errorf("object %d: read delta base: %w", i+1, err)
			}
		default:
			return fmt.Errorf("object %d: invalid object type %d", i+1, kind)
		}
		zr, err := zlib.NewReader(br)
		if err != nil {
			return fmt.Errorf("object %d: %w", i+1, err)
		}
		data := bufio.NewReader(io.LimitReader(zr, size))
		if kind >= 6 {
			// A delta starts with the base's size and the result's size.
			if _, err := readVarint(data); err != nil {
				return fmt.Errorf("object %d: read delta: %w", i+1, err)
			}
			result, err := readVarint(data)
			if err != nil {
				return fmt.Errorf("object %d: read delta: %w", i+1, err)
			}
			if err := tooLarge(result); err != nil {
				return err
			}
		}
		if _, err := io.Copy(io.Discard, data); err != nil {
			return fmt.Errorf("object %d: inflate: %w", i+1, err)
		}
		// The stream must end here: reading on checks its checksum.
		if n, err := zr.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return fmt.Errorf("object %d: its data is not the size its header says", i+1)
		}
	}
	// The trailing checksum, and anything after it, goes to index-pack.
	_, err := io.Copy(io.Discard, br)
	return err
}

// readObjectHeader reads a pack object's type (3 bits) and size (4 bits,
// then 7 bits a byte while the high bit is set).
func readObjectHeader(br *bufio.Reader) (byte, int64, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	kind := (c >> 4) & 7
	size := int64(c & 15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return 0, 0, errors.New("object size out of range")
		}
		if c, err = br.ReadByte(); err != nil {
			return 0, 0, err
		}
		size |= int64(c&0x7f) << shift
	}
	return kind, size, nil
}

// readVarint reads a delta header size: 7 bits a byte, least significant
// first, while the high bit is set.
func readVarint(r io.ByteReader) (int64, error) {
	var n int64
	for shift := 0; ; shift += 7 {
		if shift > 56 {
			return 0, errors.New("size out of range")
		}
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			return n, nil
		}
	}
}
