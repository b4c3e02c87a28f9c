package listpage

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// keys is a sorted listing of n keys "k00000" … and a fetch over it that
// counts the rows it returns.
func listing(n int) (all []string, fetch func(after string, limit int) ([]string, error), read *int) {
	for i := range n {
		all = append(all, fmt.Sprintf("k%05d", i))
	}
	read = new(int)
	fetch = func(after string, limit int) ([]string, error) {
		i, _ := slices.BinarySearch(all, after)
		if i < len(all) && all[i] == after {
			i++
		}
		out := all[i:min(len(all), i+limit)]
		*read += len(out)
		return out, nil
	}
	return all, fetch, read
}

func id(s string) string { return s }

// pageAll follows the cursors to the end and returns every item once in
// order, and the number of pages.
func pageAll(t *testing.T, limit int, fetch func(string, int) ([]string, error), filter func([]string) ([]string, error)) ([]string, int) {
	t.Helper()
	var got []string
	after, pages := "", 0
	for {
		items, next, err := Collect(limit, after, id, fetch, filter)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) > limit {
			t.Fatalf("page of %d items, limit %d", len(items), limit)
		}
		got = append(got, items...)
		pages++
		if next == "" {
			return got, pages
		}
		if pages > 10000 {
			t.Fatal("the cursors do not end")
		}
		after = next
	}
}

func TestCollectEveryItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 6, 7, 200, 201, 1000} {
		all, fetch, _ := listing(n)
		for _, limit := range []int{1, 5, 6, 100, 1000} {
			got, pages := pageAll(t, limit, fetch, nil)
			if !slices.Equal(got, all) {
				t.Fatalf("n=%d limit=%d: got %d items, want %d in order", n, limit, len(got), len(all))
			}
			// Without a filter the page that ends the listing says so:
			// no empty last page.
			if want := max(1, (n+limit-1)/limit); pages != want {
				t.Errorf("n=%d limit=%d: %d pages, want %d", n, limit, pages, want)
			}
		}
	}
}

func TestCollectFiltered(t *testing.T) {
	all, fetch, read := listing(12000)
	every := func(k int) func([]string) ([]string, error) {
		return func(b []string) ([]string, error) {
			var kept []string
			for _, s := range b {
				var i int
				fmt.Sscanf(s, "k%d", &i)
				if i%k == 0 {
					kept = append(kept, s)
				}
			}
			return kept, nil
		}
	}
	want, _ := every(7)(all)
	for _, limit := range []int{1, 3, 100, 1000} {
		got, _ := pageAll(t, limit, fetch, every(7))
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: got %d items, want %d in order", limit, len(got), len(want))
		}
	}
	// A filter that keeps almost nothing reads at most ScanBudget rows
	// (plus one batch) per page and still finds the rare items.
	*read = 0
	items, next, err := Collect(10, "", id, fetch, every(11000))
	if err != nil {
		t.Fatal(err)
	}
	if *read > ScanBudget+filteredBatch {
		t.Errorf("one page read %d rows, budget %d", *read, ScanBudget)
	}
	if !slices.Equal(items, []string{"k00000"}) || next == "" {
		t.Errorf("first page %v, next %q: want [k00000] and a cursor", items, next)
	}
	got, pages := pageAll(t, 10, fetch, every(11000))
	if !slices.Equal(got, []string{"k00000", "k11000"}) || pages < 3 {
		t.Errorf("got %v in %d pages, want [k00000 k11000] in at least 3", got, pages)
	}
}

func TestCollectError(t *testing.T) {
	boom := fmt.Errorf("boom")
	_, _, err := Collect(5, "", id, func(string, int) ([]string, error) { return nil, boom }, nil)
	if err != boom {
		t.Fatalf("err = %v, want the fetch's", err)
	}
}

func TestCursor(t *testing.T) {
	for _, key := range []string{"alice", "a.b@c", "é", strings.Repeat("x", 255)} {
		c := EncodeCursor("u1", key)
		got, err := DecodeCursor("u1", c)
		if err != nil || got != key {
			t.Errorf("round trip of %q: %q, %v", key, got, err)
		}
		if _, err := DecodeCursor("c1", c); err != ErrBadCursor {
			t.Errorf("another kind's cursor: %v, want ErrBadCursor", err)
		}
	}
	for _, c := range []string{"!", "dTE", EncodeCursor("u1", ""), EncodeCursor("u1", "\xff"), "dTEuYWxpY2U=", "u1.alice"} {
		if _, err := DecodeCursor("u1", c); err != ErrBadCursor {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", c, err)
		}
	}
	if k, err := DecodeCursor("u1", ""); k != "" || err != nil {
		t.Errorf("empty cursor: %q, %v", k, err)
	}
}

func TestLimit(t *testing.T) {
	for n, want := range map[int]int{0: DefaultLimit, 1: 1, MaxLimit: MaxLimit} {
		if got, err := Limit(n); got != want || err != nil {
			t.Errorf("Limit(%d) = %d, %v", n, got, err)
		}
	}
	for _, n := range []int{-1, MaxLimit + 1} {
		if _, err := Limit(n); apperr.CodeOf(err) != apperr.EInvalid {
			t.Errorf("Limit(%d): %v, want invalid_request", n, err)
		}
	}
}
