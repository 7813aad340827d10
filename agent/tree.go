package agent

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ytypes"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// schema is the compiled YANG schema of the generated structs.
var schema = sync.OnceValue(func() *ytypes.Schema {
	s, err := gen.Schema()
	if err != nil {
		panic(fmt.Sprintf("generated schema does not load: %v", err))
	}
	return s
})

// RootEntry is the schema entry of the device root.
func RootEntry() *yang.Entry { return schema().RootSchema() }

// entryFor returns the schema entry that describes a generated struct.
func entryFor(t reflect.Type) *yang.Entry {
	return schema().SchemaTree[t.Name()]
}

// Field is a YANG child of a generated struct: its element name and the
// index of the struct field that holds it.
type Field struct {
	Name  string
	Index int
}

// structInfo is what the walkers of the tree need of a generated struct
// type, read once from its path tags: its YANG children in field order,
// and the field of each element name.
type structInfo struct {
	fields []Field
	index  map[string]int
}

var structInfos sync.Map // reflect.Type -> *structInfo

// infoOf reads the path tags of the generated struct type t (the one
// reflection walk over struct tags).
func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		tag, ok := t.Field(i).Tag.Lookup("path")
		if !ok {
			continue
		}
		for _, p := range strings.Split(tag, "|") {
			si.index[p] = i
		}
		if name, _, _ := strings.Cut(tag, "|"); !strings.Contains(name, "/") { // compressed paths are not generated for us
			si.fields = append(si.fields, Field{Name: name, Index: i})
		}
	}
	v, _ := structInfos.LoadOrStore(t, si)
	return v.(*structInfo)
}

// StructFields returns the YANG children of the generated struct type t
// in field order.
func StructFields(t reflect.Type) []Field { return infoOf(t).fields }

func fieldIndex(t reflect.Type, name string) (int, bool) {
	i, ok := infoOf(t).index[name]
	return i, ok
}

func prefixString(elems []*gnmi.PathElem) string {
	return api.PathString(&gnmi.Path{Elem: elems})
}

// cloneMap copies a generated list map. The type switch keeps the common
// config lists on maps.Clone (a table copy), the rest go through reflection.
func cloneMap(m reflect.Value) reflect.Value {
	switch v := m.Interface().(type) {
	case map[string]*gen.PkiAuthority_Authority_TrustedCaCertificate:
		return reflect.ValueOf(maps.Clone(v))
	case map[string]*gen.PkiAuthority_Authority_CertificateRevocationList:
		return reflect.ValueOf(maps.Clone(v))
	case map[string]*gen.PkiAuthority_Authority_ClientCertificate:
		return reflect.ValueOf(maps.Clone(v))
	case map[string]*gen.PkiAuthority_Authority_Router:
		return reflect.ValueOf(maps.Clone(v))
	case map[string]*gen.PkiAuthority_Authority_Router_Peer:
		return reflect.ValueOf(maps.Clone(v))
	}
	out := reflect.MakeMapWithSize(m.Type(), m.Len())
	for it := m.MapRange(); it.Next(); {
		out.SetMapIndex(it.Key(), it.Value())
	}
	return out
}

// cow tracks which nodes of a transaction's tree are private to it, so each
// shared node on an edited path is copied once and never mutated in place.
type cow struct {
	private map[uintptr]bool
}

func newCOW() *cow { return &cow{private: map[uintptr]bool{}} }

func (c *cow) own(v reflect.Value) { c.private[v.Pointer()] = true }

func (c *cow) owns(v reflect.Value) bool { return c.private[v.Pointer()] }

// copyStruct returns a private shallow copy of the struct pointer v.
func (c *cow) copyStruct(v reflect.Value) reflect.Value {
	if c.owns(v) {
		return v
	}
	n := reflect.New(v.Type().Elem())
	n.Elem().Set(v.Elem())
	c.own(n)
	return n
}

// location is where a path points inside a tree.
type location struct {
	parent reflect.Value // *struct holding the field (private when from walkPrivate)
	field  int           // field index in parent
	key    reflect.Value // map key when the target is a list entry
	entry  *yang.Entry   // schema of the target
	elems  []*gnmi.PathElem
}

func (l *location) isList() bool { return l.key.IsValid() }

// get returns the target value (a struct pointer, leaf pointer, enum, ...)
// and whether it is set.
func (l *location) get() (reflect.Value, bool) {
	f := l.parent.Elem().Field(l.field)
	if l.isList() {
		if f.IsNil() {
			return reflect.Value{}, false
		}
		v := f.MapIndex(l.key)
		return v, v.IsValid()
	}
	return f, !f.IsZero()
}

// resolve walks elems from root. With c non-nil it copies every shared node
// on the way (creating missing containers and list entries when create is
// true), so the returned parent may be mutated. With c nil it only reads;
// ok is false when the path does not exist.
func resolve(root reflect.Value, elems []*gnmi.PathElem, c *cow, create bool) (loc *location, ok bool, err error) {
	cur := root
	entry := RootEntry()
	if len(elems) == 0 {
		return nil, false, fmt.Errorf("empty path: %w", api.ErrInvalid)
	}
	for i, pe := range elems {
		at := prefixString(elems[:i])
		child := entry.Dir[pe.Name]
		fi, found := fieldIndex(cur.Elem().Type(), pe.Name)
		if child == nil || !found {
			return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i]), Err: fmt.Errorf("%w %q: %s has no such child", ErrUnknownPath, pe.Name, at)}
		}
		last := i == len(elems)-1
		f := cur.Elem().Field(fi)
		here := prefixString(elems[:i+1])
		switch {
		case child.IsLeaf() || child.IsLeafList():
			if !last {
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: %s is a leaf and has no children", ErrUnknownPath, here)}
			}
			if len(pe.Key) > 0 {
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: leaf %s takes no keys", api.ErrInvalid, pe.Name)}
			}
			return &location{parent: cur, field: fi, entry: child, elems: elems}, true, nil
		case child.IsList():
			if len(pe.Key) == 0 {
				if last {
					return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: list %s needs its key [%s=...]", api.ErrInvalid, here, child.Key)}
				}
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: list %s needs its key [%s=...] before %s", api.ErrInvalid, here, child.Key, elems[i+1].Name)}
			}
			kv, kok := pe.Key[child.Key]
			if len(pe.Key) != 1 || !kok {
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: list %s is keyed by %q only", api.ErrInvalid, pe.Name, child.Key)}
			}
			if f.Type().Key().Kind() != reflect.String {
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: list %s has a non-string key", api.ErrInvalid, pe.Name)}
			}
			key := reflect.ValueOf(kv).Convert(f.Type().Key())
			if c != nil {
				if f.IsNil() {
					if !create {
						return nil, false, nil
					}
					f.Set(reflect.MakeMap(f.Type()))
					c.own(f)
				} else if !c.owns(f) {
					f.Set(cloneMap(f))
					c.own(f)
				}
			} else if f.IsNil() {
				return nil, false, nil
			}
			if last {
				return &location{parent: cur, field: fi, key: key, entry: child, elems: elems}, true, nil
			}
			v := f.MapIndex(key)
			if !v.IsValid() {
				if c == nil || !create {
					return nil, false, nil
				}
				v = newListEntry(f.Type().Elem(), child, kv)
				c.own(v)
				f.SetMapIndex(key, v)
			} else if c != nil && !c.owns(v) {
				v = c.copyStruct(v)
				f.SetMapIndex(key, v)
			}
			cur, entry = v, child
		default: // container
			if len(pe.Key) > 0 {
				return nil, false, &api.PathError{Op: "resolve", Path: api.PathAt(elems[:i+1]), Err: fmt.Errorf("%w: container %s takes no keys", api.ErrInvalid, pe.Name)}
			}
			if last {
				return &location{parent: cur, field: fi, entry: child, elems: elems}, true, nil
			}
			if f.IsNil() {
				if c == nil || !create {
					return nil, false, nil
				}
				f.Set(reflect.New(f.Type().Elem()))
				c.own(f)
			} else if c != nil && !c.owns(f) {
				f.Set(c.copyStruct(f))
			}
			cur, entry = f, child
		}
	}
	panic("unreachable")
}

// newListEntry makes an empty list entry with its key leaf set.
func newListEntry(t reflect.Type, entry *yang.Entry, key string) reflect.Value {
	v := reflect.New(t.Elem())
	if fi, ok := fieldIndex(t.Elem(), entry.Key); ok {
		kf := v.Elem().Field(fi)
		kp := reflect.New(kf.Type().Elem())
		kp.Elem().Set(reflect.ValueOf(key).Convert(kf.Type().Elem()))
		kf.Set(kp)
	}
	return v
}

// lookup returns the node at elems in a read-only tree, or an invalid value.
func lookup(root *gen.Device, elems []*gnmi.PathElem) (reflect.Value, error) {
	if len(elems) == 0 {
		return reflect.ValueOf(root), nil
	}
	loc, ok, err := resolve(reflect.ValueOf(root), elems, nil, false)
	if err != nil || !ok {
		return reflect.Value{}, err
	}
	v, set := loc.get()
	if !set {
		return reflect.Value{}, nil
	}
	return v, nil
}

// Lookup returns the node at path p of a read-only tree: a generated struct
// pointer for containers and list entries, the Go value for a leaf. ok is
// false when nothing is there.
func Lookup(root *gen.Device, p *gnmi.Path) (node any, ok bool, err error) {
	v, err := lookup(root, p.GetElem())
	if err != nil || !v.IsValid() {
		return nil, false, err
	}
	return v.Interface(), true, nil
}

// readOnlyAt reports the first config-false element on a path.
func readOnlyAt(elems []*gnmi.PathElem) (string, bool) {
	e := RootEntry()
	for i, pe := range elems {
		if e = e.Dir[pe.Name]; e == nil {
			return "", false
		}
		if e.ReadOnly() {
			return prefixString(elems[:i+1]), true
		}
	}
	return "", false
}

// checkMandatory reports mandatory leaves missing in a struct subtree; ygot's
// validation does not check YANG mandatory.
func checkMandatory(v reflect.Value, e *yang.Entry, at []*gnmi.PathElem) error {
	return configFields(v, e, func(name string, child *yang.Entry, f reflect.Value) error {
		switch {
		case child.IsLeaf():
			if child.Mandatory == yang.TSTrue && f.IsZero() {
				return &api.PathError{Op: "validate", Path: api.PathAt(appendElemCopy(at, &gnmi.PathElem{Name: name})), Err: fmt.Errorf("%w: mandatory leaf %s is missing", api.ErrInvalid, name)}
			}
		case child.IsList():
			for it := f.MapRange(); it.Next(); {
				p := appendElemCopy(at, &gnmi.PathElem{Name: name, Key: map[string]string{child.Key: fmt.Sprint(it.Key())}})
				if err := checkMandatory(it.Value(), child, p); err != nil {
					return err
				}
			}
		case child.IsContainer():
			return checkMandatory(f, child, appendElemCopy(at, &gnmi.PathElem{Name: name}))
		}
		return nil
	})
}

// configFields calls fn with every configuration child (config true) of
// the generated struct v of schema e and the field that holds it, until fn
// fails: the one walk of a struct's children by its schema.
func configFields(v reflect.Value, e *yang.Entry, fn func(name string, child *yang.Entry, f reflect.Value) error) error {
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() || e == nil {
		return nil
	}
	s := v.Elem()
	for name, child := range e.Dir {
		if child.ReadOnly() {
			continue
		}
		if fi, ok := fieldIndex(s.Type(), name); ok {
			if err := fn(name, child, s.Field(fi)); err != nil {
				return err
			}
		}
	}
	return nil
}
