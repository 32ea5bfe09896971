package release

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CycleError reports a dependency cycle among packages.
type CycleError struct {
	// Cycle lists the packages on the cycle, the first repeated at the end (a -> b -> a).
	Cycle []string
}

func (e *CycleError) Error() string {
	return "package dependency cycle: " + strings.Join(e.Cycle, " -> ")
}

// TopoOrder orders package names so that every package comes after all its dependencies; deps maps each package
// to the names it depends on. Among packages whose order is free, names sort alphabetically, so the result is
// deterministic. A dependency that is not a key of deps is an error, and so is a cycle (*CycleError).
func TopoOrder(deps map[string][]string) ([]string, error) {
	names := slices.Sorted(maps.Keys(deps))
	for _, n := range names {
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				return nil, fmt.Errorf("package '%s' depends on unknown package '%s'", n, d)
			}
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, stack []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			i := slices.Index(stack, n)
			return &CycleError{Cycle: append(slices.Clone(stack[i:]), n)}
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range slices.Sorted(slices.Values(deps[n])) {
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}
