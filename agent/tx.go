package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// Op is an edit operation, named as in NETCONF edit-config.
type Op int

const (
	// OpMerge merges the value into what is there (gNMI update).
	OpMerge Op = iota
	// OpReplace replaces the node with the value (gNMI replace).
	OpReplace
	// OpCreate creates the node; it fails with ErrExists if it is there.
	OpCreate
	// OpDelete deletes the node; it fails with ErrMissing if it is absent.
	OpDelete
	// OpRemove deletes the node if it is there (gNMI delete).
	OpRemove
)

var opNames = [...]string{"merge", "replace", "create", "delete", "remove"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Edit is one change to a tree. Value is required for merge, replace and
// create: a scalar TypedValue for a leaf, or JSON (json_ietf_val as RFC 7951
// or json_val, which is accepted too) for any node.
type Edit struct {
	Op    Op
	Path  *gnmi.Path
	Value *gnmi.TypedValue
}

// Tx is a transaction: a private tree that starts as a snapshot of a
// datastore and takes edits. Nothing is visible to others until it is
// committed. A Tx is not safe for concurrent use.
type Tx struct {
	base    *gen.Device
	root    *gen.Device
	cow     *cow
	touched map[string][]*gnmi.PathElem
	// wholeTree is set when the root itself was replaced.
	wholeTree bool
	// edits are the edits applied, in order, so a commit can replay them on
	// a running tree that moved since the transaction began.
	edits []Edit
}

func newTx(base *gen.Device) *Tx {
	c := newCOW()
	root := c.copyStruct(reflect.ValueOf(base)).Interface().(*gen.Device)
	return &Tx{base: base, root: root, cow: c, touched: map[string][]*gnmi.PathElem{}}
}

// Root returns the transaction's tree. Read-only for the caller.
func (t *Tx) Root() *gen.Device { return t.root }

// Changed reports whether any edit was applied.
func (t *Tx) Changed() bool { return t.wholeTree || len(t.touched) > 0 }

// Apply applies edits in order. When one fails, the transaction is left as
// it was before the call, and the error is a *PathError naming the path.
// A value holding private key material is refused before any edit is
// applied (ErrKeyMaterial).
func (t *Tx) Apply(edits ...Edit) error {
	if err := screenEdits(edits); err != nil {
		return err
	}
	saveRoot, saveTouched, saveWhole := t.root, cloneTouched(t.touched), t.wholeTree
	// Copy-on-write again from the saved root so a failed batch leaves
	// saveRoot untouched.
	saveCOW := t.cow
	t.cow = newCOW()
	t.root = t.cow.copyStruct(reflect.ValueOf(saveRoot)).Interface().(*gen.Device)
	for _, e := range edits {
		if err := t.apply(e); err != nil {
			t.root, t.touched, t.wholeTree, t.cow = saveRoot, saveTouched, saveWhole, saveCOW
			return err
		}
	}
	t.edits = append(t.edits, edits...)
	return nil
}

func cloneTouched(m map[string][]*gnmi.PathElem) map[string][]*gnmi.PathElem {
	out := make(map[string][]*gnmi.PathElem, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (t *Tx) apply(e Edit) error {
	elems := e.Path.GetElem()
	ps := api.PathString(e.Path)
	fail := func(err error) error {
		var pe *api.PathError
		if errors.As(err, &pe) {
			pe.Op = e.Op.String()
			return err
		}
		return &api.PathError{Op: e.Op.String(), Path: e.Path, Err: err}
	}
	if at, ro := readOnlyAt(elems); ro {
		return fail(fmt.Errorf("%w: %s is state (config false) and cannot be written", ErrReadOnly, at))
	}
	if key, entry, ok := keyLeafOf(elems); ok && (e.Op == OpDelete || e.Op == OpRemove) {
		// An entry without its key is not a list entry: served as such and
		// saved, it would not load back.
		return fail(&KeyLeafError{Key: key, Entry: entry})
	}
	needValue := e.Op == OpMerge || e.Op == OpReplace || e.Op == OpCreate
	if needValue && e.Value == nil {
		return fail(fmt.Errorf("%w: %s needs a value", api.ErrInvalid, e.Op))
	}
	if needValue {
		entry := RootEntry()
		if len(elems) > 0 {
			entry = entryAt(elems)
		}
		if err := checkEdit(elems, entry, e.Value); err != nil {
			return fail(err)
		}
	}
	if len(elems) == 0 {
		return t.applyRoot(e, fail)
	}
	// Read first, so delete of a missing node copies nothing.
	if _, _, err := resolve(reflect.ValueOf(t.root), elems, nil, false); err != nil {
		return fail(err)
	}
	loc, err := t.locate(elems, needValue)
	if err != nil {
		return fail(err)
	}
	if loc == nil { // an ancestor is missing
		switch e.Op {
		case OpDelete:
			return fail(fmt.Errorf("%w: nothing at %s to delete", api.ErrMissing, ps))
		case OpRemove:
			return nil
		}
	}
	_, exists := loc.get()
	switch e.Op {
	case OpCreate:
		if exists {
			return fail(fmt.Errorf("%w: %s is already configured", api.ErrExists, ps))
		}
	case OpDelete:
		if !exists {
			return fail(fmt.Errorf("%w: nothing at %s to delete", api.ErrMissing, ps))
		}
	case OpRemove:
		if !exists {
			return nil
		}
	}
	t.touch(elems)
	switch e.Op {
	case OpDelete, OpRemove:
		loc.clear()
		return nil
	}
	if err := t.setValue(loc, e, exists); err != nil {
		return fail(err)
	}
	return nil
}

// keyLeafOf reports whether elems ends at a key leaf of a list entry, with
// the key's name and the entry's path.
func keyLeafOf(elems []*gnmi.PathElem) (key, entry string, ok bool) {
	if len(elems) < 2 {
		return "", "", false
	}
	last := elems[len(elems)-1]
	list := entryAt(elems[:len(elems)-1])
	if list == nil || !list.IsList() || !slices.Contains(strings.Fields(list.Key), last.Name) {
		return "", "", false
	}
	return last.Name, prefixString(elems[:len(elems)-1]), true
}

func (t *Tx) applyRoot(e Edit, fail func(error) error) error {
	switch e.Op {
	case OpDelete, OpRemove:
		t.root = &gen.Device{}
	default:
		data, err := jsonBytes(e.Value)
		if err != nil {
			return fail(err)
		}
		n := &gen.Device{}
		if e.Op == OpMerge {
			c, err := ygot.DeepCopy(t.root)
			if err != nil {
				return fail(err)
			}
			n = c.(*gen.Device)
		}
		if err := gen.Unmarshal(data, n); err != nil {
			return fail(modelError(nil, err))
		}
		t.root = n
	}
	t.cow = newCOW()
	t.cow.own(reflect.ValueOf(t.root))
	t.wholeTree = true
	return nil
}

// locate resolves elems in the transaction's private tree for writing,
// creating missing containers and list entries on the way when create is
// true. The first list entry (or presence container) it creates is
// touched: it is part of what the transaction changed (saved, diffed and
// validated), even when the edit's own node is removed again later. A
// non-presence container holds no configuration of its own.
func (t *Tx) locate(elems []*gnmi.PathElem, create bool) (*location, error) {
	var made []*gnmi.PathElem
	for i := 1; create && i < len(elems); i++ {
		if v, _ := lookup(t.root, elems[:i]); !v.IsValid() && makesNode(entryAt(elems[:i])) {
			made = elems[:i]
			break
		}
	}
	loc, _, err := resolve(reflect.ValueOf(t.root), elems, t.cow, create)
	if err != nil {
		return nil, err
	}
	if made != nil {
		t.touch(made)
	}
	return loc, nil
}

func (t *Tx) touch(elems []*gnmi.PathElem) {
	t.touched[prefixString(elems)] = elems
}

// clear removes the target from its (private) parent.
func (l *location) clear() {
	f := l.parent.Elem().Field(l.field)
	if l.isList() {
		f.SetMapIndex(l.key, reflect.Value{})
		return
	}
	f.Set(reflect.Zero(f.Type()))
}

// setValue writes e.Value at loc. Struct targets get a private deep copy (or
// a fresh node for replace) so merging never reaches shared children.
func (t *Tx) setValue(loc *location, e Edit, exists bool) error {
	if loc.entry.IsLeaf() || loc.entry.IsLeafList() {
		f := loc.parent.Elem().Field(loc.field)
		if e.Op == OpReplace {
			f.Set(reflect.Zero(f.Type()))
		}
		v := e.Value
		if jv, ok := v.GetValue().(*gnmi.TypedValue_JsonVal); ok {
			v = &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: jv.JsonVal}}
		}
		if err := checkJSONNumbers(v.GetJsonIetfVal()); err != nil {
			return err
		}
		parentEntry := entryFor(loc.parent.Type().Elem())
		last := loc.elems[len(loc.elems)-1]
		if err := ytypes.SetNode(parentEntry, loc.parent.Interface(), &gnmi.Path{Elem: []*gnmi.PathElem{{Name: last.Name}}}, v); err != nil {
			return modelError(loc.elems, err)
		}
		if key, entry, ok := keyLeafOf(loc.elems); ok {
			// Writing the key the path names is a no-op (a whole entry
			// set with its name); any other value would leave the entry
			// under a map key its key leaf contradicts.
			want := loc.elems[len(loc.elems)-2].Key[key]
			if f.Kind() != reflect.Pointer || f.IsNil() || fmt.Sprint(f.Elem().Interface()) != want {
				return &KeyLeafError{Key: key, Entry: entry}
			}
		}
		return nil
	}
	data, err := jsonBytes(e.Value)
	if err != nil {
		return err
	}
	var target reflect.Value
	cur, _ := loc.get()
	switch {
	case exists && e.Op == OpMerge:
		c, err := ygot.DeepCopy(cur.Interface().(ygot.GoStruct))
		if err != nil {
			return err
		}
		target = reflect.ValueOf(c)
	case loc.isList():
		target = newListEntry(loc.parent.Elem().Field(loc.field).Type().Elem(), loc.entry, loc.key.String())
	default:
		target = reflect.New(loc.parent.Elem().Field(loc.field).Type().Elem())
	}
	t.cow.own(target)
	if err := gen.Unmarshal(data, target.Interface().(ygot.GoStruct)); err != nil {
		return modelError(loc.elems, err)
	}
	f := loc.parent.Elem().Field(loc.field)
	if loc.isList() {
		if fi, ok := fieldIndex(target.Type().Elem(), loc.entry.Key); ok {
			kf := target.Elem().Field(fi)
			if kf.IsNil() {
				return fmt.Errorf("%w: the value has no key %s; it must be the %s of the path", api.ErrInvalid, loc.entry.Key, loc.entry.Key)
			}
			if kf.Elem().String() != loc.key.String() {
				if exists {
					// A value naming another key would rename the entry.
					return &KeyLeafError{Key: loc.entry.Key, Entry: prefixString(loc.elems)}
				}
				return fmt.Errorf("%w: key %s in the value does not match the key in the path; an entry is named by its path", api.ErrInvalid, loc.entry.Key)
			}
		}
		f.SetMapIndex(loc.key, target)
		return nil
	}
	f.Set(target)
	return nil
}

// jsonBytes returns the JSON carried by a TypedValue. Scalars are not
// accepted for containers.
func jsonBytes(v *gnmi.TypedValue) ([]byte, error) {
	var data []byte
	switch x := v.GetValue().(type) {
	case *gnmi.TypedValue_JsonIetfVal:
		data = x.JsonIetfVal
	case *gnmi.TypedValue_JsonVal:
		data = x.JsonVal
	default:
		return nil, fmt.Errorf("%w: a container or list entry needs a JSON object value, got %T", api.ErrInvalid, v.GetValue())
	}
	return data, checkJSONNumbers(data)
}

// checkJSONNumbers refuses a JSON number with a fraction or an exponent.
// In RFC 7951 only the integer types up to 32 bits are JSON numbers
// (decimal64 is a string), while ygot's unmarshalling would silently
// truncate 3.5 to 3.
func checkJSONNumbers(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if err != nil {
			return nil // malformed JSON is reported by the unmarshaller
		}
		if n, ok := tok.(json.Number); ok && strings.ContainsAny(string(n), ".eE") {
			return fmt.Errorf("%w: %s is not an integer; every number in this model is an integer", api.ErrInvalid, n)
		}
	}
}

// Validate checks the YANG model (types, ranges, patterns, keys, mandatory)
// over the nodes the transaction touched, or the whole tree when its root
// was replaced.
func (t *Tx) Validate() error {
	if t.wholeTree {
		if err := t.root.ΛValidate(); err != nil {
			return validateError(nil, t.root, RootEntry(), err)
		}
		return checkMandatory(reflect.ValueOf(t.root), RootEntry(), nil)
	}
	for _, elems := range t.scopes() {
		v, err := lookup(t.root, elems)
		if err != nil {
			return err
		}
		if !v.IsValid() {
			continue
		}
		loc, _, _ := resolve(reflect.ValueOf(t.root), elems, nil, false)
		var entry = RootEntry()
		if loc != nil {
			entry = loc.entry
		}
		if gs, ok := v.Interface().(interface {
			ygot.GoStruct
			ΛValidate(...ygot.ValidationOption) error
		}); ok {
			if err := gs.ΛValidate(); err != nil {
				return validateError(elems, gs, entry, err)
			}
		}
		if err := checkMandatory(v, entry, elems); err != nil {
			return err
		}
	}
	return nil
}

// scopes returns the smallest set of struct paths that covers every touched
// node: a touched leaf is covered by its parent struct, and a path under
// another scope is dropped.
func (t *Tx) scopes() [][]*gnmi.PathElem {
	var all [][]*gnmi.PathElem
	for _, elems := range t.touched {
		if e := entryAt(elems); e != nil && (e.IsLeaf() || e.IsLeafList()) {
			elems = elems[:len(elems)-1]
		}
		all = append(all, elems)
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) < len(all[j]) })
	var out [][]*gnmi.PathElem
	seen := map[string]bool{}
next:
	for _, elems := range all {
		for i := 0; i <= len(elems); i++ {
			if seen[prefixString(elems[:i])] {
				continue next
			}
		}
		seen[prefixString(elems)] = true
		out = append(out, elems)
	}
	return out
}

func entryAt(elems []*gnmi.PathElem) *yang.Entry {
	e := RootEntry()
	for _, pe := range elems {
		if e = e.Dir[pe.Name]; e == nil {
			return nil
		}
	}
	return e
}

// Changes returns the leaf-level differences between the transaction's base
// and its tree, computed over the touched scopes only.
func (t *Tx) Changes() ([]api.Change, error) {
	if t.wholeTree {
		return api.Diff(t.base, t.root)
	}
	var out []api.Change
	for _, elems := range t.scopes() {
		old, err := lookup(t.base, elems)
		if err != nil {
			return nil, err
		}
		cur, err := lookup(t.root, elems)
		if err != nil {
			return nil, err
		}
		ch, err := api.DiffNodes(old, cur, elems)
		if err != nil {
			return nil, err
		}
		out = append(out, ch...)
	}
	return out, nil
}

// EmitJSON renders a tree (or any generated struct) as RFC 7951 JSON with
// module-qualified top-level names.
func EmitJSON(s ygot.GoStruct) ([]byte, error) {
	str, err := ygot.EmitJSON(s, &ygot.EmitJSONConfig{
		Format:         ygot.RFC7951,
		RFC7951Config:  &ygot.RFC7951JSONConfig{AppendModuleName: true},
		SkipValidation: true,
	})
	return []byte(str), err
}

// subtreeJSON renders the node at elems as RFC 7951 JSON (for the journal).
func subtreeJSON(root *gen.Device, elems []*gnmi.PathElem) (json.RawMessage, bool, error) {
	v, err := lookup(root, elems)
	if err != nil || !v.IsValid() {
		return nil, false, err
	}
	if gs, ok := v.Interface().(ygot.GoStruct); ok {
		b, err := EmitJSON(gs)
		return b, true, err
	}
	loc, _, _ := resolve(reflect.ValueOf(root), elems, nil, false)
	parent := loc.parent.Interface().(ygot.GoStruct)
	b, err := EmitJSON(parent)
	if err != nil {
		return nil, false, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, err
	}
	name := elems[len(elems)-1].Name
	for k, raw := range m {
		if k == name || strings.HasSuffix(k, ":"+name) {
			return raw, true, nil
		}
	}
	return nil, false, nil
}
