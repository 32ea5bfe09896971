package acceptance_test

import (
	"slices"
	"testing"
)

func TestCompareVersionsOrdersDevAndFinalVersions(t *testing.T) {
	vs := []string{"1", "0+dev.10", "0+dev.2", "2.1", "0+dev.9", "2.0.1"}
	slices.SortFunc(vs, compareVersions)
	want := []string{"0+dev.2", "0+dev.9", "0+dev.10", "1", "2.0.1", "2.1"}
	if !slices.Equal(vs, want) {
		t.Fatalf("got %v, want %v", vs, want)
	}
}
