package config

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// templateOnly are spec properties consumed by job templates, not by etcd_ctl.
var templateOnly = map[string]bool{}

// TestJobSpecMatchesConfig keeps jobs/etcd/spec and Properties in step: every spec property is a config field
// (the rendered JSON is decoded strictly) and every spec default equals Default().
func TestJobSpecMatchesConfig(t *testing.T) {
	raw, err := os.ReadFile("../../../jobs/etcd/spec")
	require.NoError(t, err)
	var spec struct {
		Properties map[string]struct {
			Default any `yaml:"default"`
		} `yaml:"properties"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &spec))

	fields := map[string]bool{}
	propertyNames("etcd.", reflect.TypeOf(Properties{}), fields)
	defaults, err := json.Marshal(rawDefaults())
	require.NoError(t, err)
	var defMap map[string]any
	require.NoError(t, json.Unmarshal(defaults, &defMap))

	var specNames []string
	for name, p := range spec.Properties {
		specNames = append(specNames, name)
		if templateOnly[name] {
			continue
		}
		require.True(t, fields[name], "spec property %s has no field in config.Properties", name)
		if p.Default != nil {
			got := lookup(defMap, strings.TrimPrefix(name, "etcd."))
			require.EqualValues(t, normalize(p.Default), normalize(got), "default of %s", name)
		}
	}
	sort.Strings(specNames)
	for name := range fields {
		_, ok := spec.Properties[name]
		require.True(t, ok, "config field %s is not declared in jobs/etcd/spec (spec properties: %v)", name, specNames)
	}
}

func rawDefaults() map[string]any {
	b, _ := json.Marshal(DefaultProperties())
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return v
}

// propertyNames lists the spec property names of a properties struct: nested structs (etcd.consul) are groups
// of properties, named with dots.
func propertyNames(prefix string, typ reflect.Type, out map[string]bool) {
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := prefix + strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Type.Kind() == reflect.Struct {
			propertyNames(name+".", f.Type, out)
			continue
		}
		out[name] = true
	}
}

// lookup reads a dotted name from nested JSON maps.
func lookup(m map[string]any, dotted string) any {
	var cur any = m
	for _, part := range strings.Split(dotted, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}
