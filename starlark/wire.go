package starlark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// The wire form carries requests and results between bottle and the
// child process that evaluates a profile (see Isolation). Both ends are
// the same executable, so the Go types are the schema: every exported
// field in declaration order, integers as varints, strings and lists
// length-prefixed, a nil list or pointer apart from an empty one.
//
// JSON would not do: encoding/json turns invalid UTF-8 into U+FFFD, and a
// profile can make such strings ("é"[:1]), which must reach the plan,
// the summary and the sandbox exactly as the profile made them.

// appendWire appends the wire form of v to b.
func appendWire(b []byte, v reflect.Value) []byte {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return binary.AppendUvarint(b, v.Uint())
	case reflect.Float32, reflect.Float64:
		return binary.AppendUvarint(b, math.Float64bits(v.Float()))
	case reflect.String:
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.String()...)
	case reflect.Slice:
		if v.IsNil() {
			return append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		for i := range v.Len() {
			b = appendWire(b, v.Index(i))
		}
		return b
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, 0)
		}
		return appendWire(append(b, 1), v.Elem())
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			if !t.Field(i).IsExported() {
				panic(fmt.Sprintf("wire: %s.%s is not exported", t, t.Field(i).Name))
			}
			b = appendWire(b, v.Field(i))
		}
		return b
	}
	panic(fmt.Sprintf("wire: cannot encode a %s", v.Type()))
}

var errWire = errors.New("malformed message from the evaluation process")

// wireReader decodes what appendWire wrote.
type wireReader struct{ b []byte }

func (r *wireReader) uvarint() (uint64, error) {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		return 0, errWire
	}
	r.b = r.b[k:]
	return n, nil
}

// read decodes into v, which must be settable.
func (r *wireReader) read(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		if len(r.b) == 0 || r.b[0] > 1 {
			return errWire
		}
		v.SetBool(r.b[0] == 1)
		r.b = r.b[1:]
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, k := binary.Varint(r.b)
		if k <= 0 || v.OverflowInt(n) {
			return errWire
		}
		v.SetInt(n)
		r.b = r.b[k:]
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := r.uvarint()
		if err != nil || v.OverflowUint(n) {
			return errWire
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		v.SetFloat(math.Float64frombits(n))
	case reflect.String:
		n, err := r.uvarint()
		if err != nil || n > uint64(len(r.b)) {
			return errWire
		}
		v.SetString(string(r.b[:n]))
		r.b = r.b[n:]
	case reflect.Slice:
		n, err := r.uvarint()
		// Every element takes at least one byte: a length beyond what is
		// left is malformed, and never allocated.
		if err != nil || n > uint64(len(r.b))+1 {
			return errWire
		}
		if n == 0 {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(v.Type(), int(n-1), int(n-1))
		for i := range s.Len() {
			if err := r.read(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Pointer:
		if len(r.b) == 0 || r.b[0] > 1 {
			return errWire
		}
		nonNil := r.b[0] == 1
		r.b = r.b[1:]
		if !nonNil {
			v.SetZero()
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if err := r.read(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if err := r.read(v.Field(i)); err != nil {
				return err
			}
		}
	default:
		panic(fmt.Sprintf("wire: cannot decode a %s", v.Type()))
	}
	return nil
}

// marshalWire returns the wire form of *v.
func marshalWire[T any](v *T) []byte {
	return appendWire(nil, reflect.ValueOf(v).Elem())
}

// unmarshalWire decodes b, all of it, into *v.
func unmarshalWire[T any](b []byte, v *T) error {
	r := &wireReader{b: b}
	if err := r.read(reflect.ValueOf(v).Elem()); err != nil {
		return err
	}
	if len(r.b) != 0 {
		return errWire
	}
	return nil
}
