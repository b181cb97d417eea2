package starlark

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/bottle-dev/bottle/plan"
	"github.com/bottle-dev/bottle/starlark/builtins"
)

// fill sets every field reachable from v: in shape "nil" every list and
// pointer is nil, in "empty" every list is empty and every pointer set,
// in "full" every list has two elements. Strings hold invalid UTF-8 and
// characters JSON escapes, numbers their extremes, so that anything a
// round trip loses shows.
func fill(v reflect.Value, shape string, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(*n%2 == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		vals := []int64{-1, math.MaxInt32, -1 << 40, 7}
		x := vals[*n%len(vals)]
		if v.OverflowInt(x) {
			x = -3
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(math.MaxUint32 + uint64(*n))
	case reflect.Float32, reflect.Float64:
		vals := []float64{0.1, math.Copysign(0, -1), 1e300, math.SmallestNonzeroFloat64}
		v.SetFloat(vals[*n%len(vals)])
	case reflect.String:
		v.SetString(fmt.Sprintf("é\xc3%d\x00\x1b[2J\u202e<&>\"\\\xff", *n))
	case reflect.Slice:
		switch shape {
		case "nil":
			v.SetZero()
		case "empty":
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			s := reflect.MakeSlice(v.Type(), 2, 2)
			for i := range 2 {
				fill(s.Index(i), shape, n)
			}
			v.Set(s)
		}
	case reflect.Pointer:
		if shape == "nil" {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), shape, n)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), shape, n)
		}
	default:
		panic("fill: " + v.Type().String())
	}
}

// roundTrip fills a T in each shape, sends it over the wire and compares.
func roundTrip[T any](t *testing.T) {
	t.Helper()
	for _, shape := range []string{"nil", "empty", "full"} {
		var in, out T
		n := 0
		fill(reflect.ValueOf(&in).Elem(), shape, &n)
		if err := unmarshalWire(marshalWire(&in), &out); err != nil {
			t.Fatalf("%T (%s): %v", in, shape, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("%T (%s) changed on the wire:\n in %+v\nout %+v", in, shape, in, out)
		}
		// DeepEqual takes -0 for 0; the wire form of the result holds the bits.
		if !bytes.Equal(marshalWire(&in), marshalWire(&out)) {
			t.Errorf("%T (%s) changed on the wire: a float's bits differ", in, shape)
		}
	}
}

// TestWireRoundTrip checks that the plan, what a profile declares, its
// errors, and the child's requests and responses cross the process
// boundary exactly: every field, invalid UTF-8, nil apart from empty.
func TestWireRoundTrip(t *testing.T) {
	roundTrip[plan.Plan](t)
	roundTrip[builtins.State](t)
	roundTrip[Error](t)
	roundTrip[request](t)
	roundTrip[response](t)
}

// TestWireNotJSON shows why the wire form is not JSON: encoding/json
// loses what a profile can make.
func TestWireNotJSON(t *testing.T) {
	in := builtins.State{Env: []plan.EnvVar{{Name: "X", Value: "é"[:1], From: "//bottle.star:2:4"}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var viaJSON, viaWire builtins.State
	if err := json.Unmarshal(b, &viaJSON); err != nil {
		t.Fatal(err)
	}
	if viaJSON.Env[0].Value == in.Env[0].Value {
		t.Fatalf("encoding/json kept invalid UTF-8; the wire form could be JSON")
	}
	if err := unmarshalWire(marshalWire(&in), &viaWire); err != nil || viaWire.Env[0].Value != "\xc3" {
		t.Errorf("the wire form changed %q to %q (%v)", in.Env[0].Value, viaWire.Env[0].Value, err)
	}
}

// TestWireMalformed checks that every truncation of a message is an
// error, not a panic or a huge allocation.
func TestWireMalformed(t *testing.T) {
	var in builtins.State
	n := 0
	fill(reflect.ValueOf(&in).Elem(), "full", &n)
	b := marshalWire(&in)
	for i := range len(b) {
		var out builtins.State
		if err := unmarshalWire(b[:i], &out); err == nil {
			t.Fatalf("%d of %d bytes decoded without error", i, len(b))
		}
	}
	var out builtins.State
	if err := unmarshalWire(append(b, 0), &out); err == nil {
		t.Errorf("a trailing byte decoded without error")
	}
	// A list that claims 2^62 elements.
	if err := unmarshalWire([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}, &out); err == nil {
		t.Errorf("a huge list length decoded without error")
	}
}
