package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// envPrefix starts the name of every environment variable Load reads.
const envPrefix = "PORTCULLIS_"

// Load builds the configuration from, in increasing order of precedence, the
// defaults, the YAML file (skipped when file is ""), the environment variables
// in environ (in [os.Environ] form, "KEY=VALUE") and overrides, normally
// command-line flags, keyed by dotted path ("dsn", "public_addr",
// "keys.algorithm"). It trims a trailing slash from the issuer, then
// validates.
//
// On failure Load returns a nil Config and an error joining every problem it
// found: unreadable or malformed YAML, unknown or duplicated YAML keys (named
// by dotted path and line), unknown override keys, values that do not parse
// (naming their source, such as "env PORTCULLIS_ACCESS_TOKEN_TTL"), and every
// [Config.Validate] failure. Unknown PORTCULLIS_* variables and variables set
// to "" are ignored. No error contains a secret.
func Load(file string, environ []string, overrides map[string]string) (*Config, error) {
	cfg := Default()
	root := reflect.ValueOf(&cfg).Elem()
	fields := leaves(root, "")

	var errs []error
	if file != "" {
		errs = append(errs, loadFile(root, fields, file)...)
	}
	errs = append(errs, applyEnv(fields, environ)...)
	errs = append(errs, applyOverrides(fields, overrides)...)

	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if err := cfg.Validate(); err != nil {
		errs = append(errs, unjoin(err)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// unjoin returns the errors joined in err, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// leaf is one configuration key: a field of Config that is not a group.
type leaf struct {
	path   string        // dotted YAML path, such as "keys.algorithm"
	value  reflect.Value // the field, addressable when the Config is
	redact string        // the field's redact tag: "", "true" or "dsn"
}

// envName returns the environment variable read for the key at path.
func envName(path string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// leaves lists the keys of the struct v in field order, descending into
// groups (nested structs).
func leaves(v reflect.Value, prefix string) []leaf {
	var out []leaf
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		path := joinPath(prefix, name)
		if isGroup(sf.Type) {
			out = append(out, leaves(v.Field(i), path)...)
			continue
		}
		out = append(out, leaf{path: path, value: v.Field(i), redact: sf.Tag.Get("redact")})
	}
	return out
}

// yamlName returns the YAML key of a struct field, or "" when the field is
// unexported or tagged `yaml:"-"`.
func yamlName(sf reflect.StructField) string {
	if !sf.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(sf.Name)
	}
	return name
}

// fieldByKey returns the field of struct v whose YAML key is key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, reflect.StructField, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if sf := t.Field(i); yamlName(sf) == key {
			return v.Field(i), sf, true
		}
	}
	return reflect.Value{}, reflect.StructField{}, false
}

// isGroup reports whether a field of type t holds nested keys.
func isGroup(t reflect.Type) bool { return t.Kind() == reflect.Struct }

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// suggest returns a hint naming the keys whose last element is name, for an
// unknown key that was probably put at the wrong level.
func suggest(fields []leaf, name string) string {
	var paths []string
	for _, f := range fields {
		if f.path == name || strings.HasSuffix(f.path, "."+name) {
			paths = append(paths, strconv.Quote(f.path))
		}
	}
	if len(paths) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(paths, " or ") + "?)"
}

// set parses s into the key's field. Its error does not repeat the value of a
// secret.
func (f leaf) set(s string) error {
	err := setString(f.value, s)
	if err != nil && f.redact != "" {
		return errors.New("invalid value (not shown: secret)")
	}
	return err
}

// setString parses s into v according to v's type. Durations are Go duration
// strings, booleans "true" or "false" (and the other strconv.ParseBool forms),
// integers decimal, and string lists comma-separated.
func setString(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf(`invalid duration %q: want a Go duration such as "30s", "15m" or "720h"`, s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid boolean %q: want true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("integer %q out of range for %s", s, v.Type())
		}
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, v.Type().Bits())
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("integer %q out of range for %s", s, v.Type())
		}
		if err != nil {
			return fmt.Errorf("invalid non-negative integer %q", s)
		}
		v.SetUint(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported configuration type %s", v.Type())
		}
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		setList(v, items)
	default:
		return fmt.Errorf("unsupported configuration type %s", v.Type())
	}
	return nil
}

// setList stores items in the string-list field v.
func setList(v reflect.Value, items []string) {
	list := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		list.Index(i).SetString(item)
	}
	v.Set(list)
}

// applyEnv sets every key whose environment variable is in environ and not
// empty. As with os.Getenv, the first of duplicated variables counts.
func applyEnv(fields []leaf, environ []string) []error {
	byName := make(map[string]leaf, len(fields))
	for _, f := range fields {
		byName[envName(f.path)] = f
	}
	var errs []error
	seen := make(map[string]bool)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		f, ok := byName[name]
		if !ok || value == "" {
			continue
		}
		if err := f.set(value); err != nil {
			errs = append(errs, fmt.Errorf("env %s: %w", name, err))
		}
	}
	return errs
}

// applyOverrides sets the keys in overrides, in sorted order so that errors
// come out the same way every time.
func applyOverrides(fields []leaf, overrides map[string]string) []error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(overrides)) {
		i := slices.IndexFunc(fields, func(f leaf) bool { return f.path == key })
		if i < 0 {
			last := key[strings.LastIndex(key, ".")+1:]
			errs = append(errs, fmt.Errorf("flag %s: unknown configuration key%s", key, suggest(fields, last)))
			continue
		}
		if err := fields[i].set(overrides[key]); err != nil {
			errs = append(errs, fmt.Errorf("flag %s: %w", key, err))
		}
	}
	return errs
}

// loadFile applies the YAML file to root, a Config.
func loadFile(root reflect.Value, fields []leaf, file string) []error {
	data, err := os.ReadFile(file)
	if err != nil {
		return []error{fmt.Errorf("config file: %w", err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: all defaults
		}
		return []error{fmt.Errorf("%s: %w", file, err)}
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err == nil {
			return []error{fmt.Errorf("%s:%d: a second YAML document; want exactly one", file, next.Line)}
		}
		return []error{fmt.Errorf("%s: %w", file, err)}
	}
	node := &doc
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return nil
		}
		node = node.Content[0]
	}
	w := walker{file: file, fields: fields}
	w.group(node, root, "")
	return w.errs
}

// walker applies a YAML node tree to a Config, strictly: unlike decoding with
// yaml's KnownFields, it reports every unknown or duplicated key by dotted
// path and line, and it parses values with the same rules as the environment
// and flags (so a duration may be written 0 as well as "15m").
type walker struct {
	file   string
	fields []leaf
	errs   []error
}

func (w *walker) errorf(n *yaml.Node, format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf("%s:%d: %s", w.file, n.Line, fmt.Sprintf(format, args...)))
}

// group applies the mapping n to the struct v, whose keys are under prefix.
func (w *walker) group(n *yaml.Node, v reflect.Value, prefix string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if prefix != "" {
			what = prefix
		}
		w.errorf(n, "%s: want a mapping of keys, got %s", what, kindName(n))
		return
	}
	firstLine := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, "keys must be plain names, got %s", kindName(k))
			continue
		}
		path := joinPath(prefix, k.Value)
		if line, dup := firstLine[k.Value]; dup {
			w.errorf(k, "duplicate key %q (first set at line %d)", path, line)
			continue
		}
		firstLine[k.Value] = k.Line
		fv, sf, ok := fieldByKey(v, k.Value)
		if !ok {
			w.errorf(k, "unknown key %q%s", path, suggest(w.fields, k.Value))
			continue
		}
		if isGroup(sf.Type) {
			w.group(val, fv, path)
			continue
		}
		w.value(val, leaf{path: path, value: fv, redact: sf.Tag.Get("redact")})
	}
}

// value applies the node n to the key f. A null value keeps the default of a
// single value and empties a list.
func (w *walker) value(n *yaml.Node, f leaf) {
	n = resolve(n)
	isList := f.value.Kind() == reflect.Slice
	switch {
	case isNull(n):
		if isList {
			f.value.Set(reflect.Zero(f.value.Type()))
		}
	case n.Kind == yaml.ScalarNode:
		if err := f.set(n.Value); err != nil {
			w.errorf(n, "%s: %v", f.path, err)
		}
	case n.Kind == yaml.SequenceNode && isList:
		items := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode {
				w.errorf(item, "%s: list items must be single values, got %s", f.path, kindName(item))
				return
			}
			items = append(items, item.Value)
		}
		setList(f.value, items)
	default:
		want := "a single value"
		if isList {
			want = "a list"
		}
		w.errorf(n, "%s: want %s, got %s", f.path, want, kindName(n))
	}
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an unexpected YAML node"
}
