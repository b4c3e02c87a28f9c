package configs

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestExampleFileListsEveryKey checks that portcullis.yaml names every key,
// each with a comment, so a new field cannot go undocumented there.
func TestExampleFileListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("portcullis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	documented := make(map[string]bool) // path -> has a comment
	var walk func(n *yaml.Node, prefix string, groupCommented bool)
	walk = func(n *yaml.Node, prefix string, groupCommented bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := joinPath(prefix, k.Value)
			commented := k.HeadComment != "" || k.LineComment != "" || v.LineComment != ""
			if v.Kind == yaml.MappingNode {
				walk(v, path, commented)
				continue
			}
			documented[path] = commented || (i == 0 && groupCommented)
		}
	}
	walk(doc.Content[0], "", false)

	c := Default()
	var want []string
	for _, f := range leaves(reflect.ValueOf(&c).Elem(), "") {
		want = append(want, f.path)
		commented, ok := documented[f.path]
		switch {
		case !ok:
			t.Errorf("portcullis.yaml does not list %s", f.path)
		case !commented:
			t.Errorf("portcullis.yaml has no comment for %s", f.path)
		}
	}
	for path := range documented {
		if !slices.Contains(want, path) {
			t.Errorf("portcullis.yaml lists %s, which is not a key", path)
		}
	}
}

// TestKeysRoundTrip checks that every field has a supported type, that its
// environment variable name is unique and well formed, and that its default
// survives formatting and parsing, as flags and env would carry it.
func TestKeysRoundTrip(t *testing.T) {
	def := Default()
	var got Config
	gotFields := leaves(reflect.ValueOf(&got).Elem(), "")
	seen := make(map[string]string)
	for i, f := range leaves(reflect.ValueOf(def), "") {
		env := envName(f.path)
		if other, dup := seen[env]; dup {
			t.Errorf("%s and %s share the environment variable %s", f.path, other, env)
		}
		seen[env] = f.path
		if strings.ContainsAny(env, ".- ") || env != strings.ToUpper(env) {
			t.Errorf("%s: malformed environment variable %s", f.path, env)
		}
		f.redact = "" // format the secret itself for this test
		if err := setString(gotFields[i].value, f.shown()); err != nil {
			t.Errorf("%s: %v", f.path, err)
		}
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("round trip through strings:\n got %v\nwant %v", got, def)
	}
}

func TestSetStringList(t *testing.T) {
	var v struct {
		List []string `yaml:"list"`
	}
	f := leaves(reflect.ValueOf(&v).Elem(), "")[0]
	if err := f.set(" a, b ,,c "); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(v.List, want) {
		t.Errorf("got %q, want %q", v.List, want)
	}
	if got := f.shown(); got != "a,b,c" {
		t.Errorf("shown() = %q", got)
	}

	w := walker{file: "list.yaml"}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("list: [x, y]\n"), &n); err != nil {
		t.Fatal(err)
	}
	w.group(n.Content[0], reflect.ValueOf(&v).Elem(), "")
	if len(w.errs) > 0 || !slices.Equal(v.List, []string{"x", "y"}) {
		t.Errorf("yaml sequence: got %q, errors %v", v.List, w.errs)
	}
}
