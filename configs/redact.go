package configs

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/storage"
)

// redacted replaces a secret that is set.
const redacted = storage.Redacted

// LogValue implements [slog.LogValuer]: every key as a group nested like the
// YAML file, with secrets_key and secrets_key_old shown as "[REDACTED]" when
// set and the DSN password replaced likewise.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(logAttrs(reflect.ValueOf(c))...)
}

// String returns every key as path=value pairs on one line, secrets redacted
// as in [Config.LogValue].
func (c Config) String() string {
	var b strings.Builder
	for i, f := range leaves(reflect.ValueOf(c), "") {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", f.path, quoteIfNeeded(f.shown()))
	}
	return b.String()
}

// GoString makes %#v print [Config.String], so that no formatting verb shows
// a secret.
func (c Config) GoString() string { return "configs.Config{" + c.String() + "}" }

func logAttrs(v reflect.Value) []slog.Attr {
	var attrs []slog.Attr
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		fv := v.Field(i)
		if isGroup(sf.Type) {
			attrs = append(attrs, slog.Attr{Key: name, Value: slog.GroupValue(logAttrs(fv)...)})
			continue
		}
		f := leaf{path: name, value: fv, redact: sf.Tag.Get("redact")}
		var val slog.Value
		switch fv.Kind() {
		case reflect.Bool:
			val = slog.BoolValue(fv.Bool())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32:
			val = slog.Int64Value(fv.Int())
		case reflect.Int64:
			if fv.Type() == reflect.TypeFor[time.Duration]() {
				val = slog.StringValue(f.shown())
			} else {
				val = slog.Int64Value(fv.Int())
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			val = slog.Uint64Value(fv.Uint())
		default:
			val = slog.StringValue(f.shown())
		}
		attrs = append(attrs, slog.Attr{Key: name, Value: val})
	}
	return attrs
}

// shown formats the key's value for display, redacting secrets.
func (f leaf) shown() string {
	switch f.redact {
	case "":
	case "dsn":
		return storage.RedactDSN(f.value.String())
	default:
		if f.value.String() != "" {
			return redacted
		}
		return ""
	}
	v := f.value
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return fmtDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = v.Index(i).String()
		}
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}

// fmtDuration formats d like [time.Duration.String] without zero trailing
// units: "15m", "720h", "1h30m", "15s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// quoteIfNeeded quotes s when it is empty or holds spaces, quotes or '='.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return strconv.Quote(s)
	}
	return s
}
