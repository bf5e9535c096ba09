// Package config loads a service's configuration from the environment with
// github.com/caarlos0/env/v10 and reports every problem as one line that
// names the variable.
//
// Entry points: Load (parse a struct with env tags from a getenv function),
// Problems (the error type listing problems), Logging (LOG_LEVEL and
// LOG_FORMAT, shared by both services) and ByteSize (values like "1GiB").
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	env "github.com/caarlos0/env/v10"
)

// Problems is a configuration error: one line per bad variable.
type Problems []string

// Error joins the problems, one per line.
func (p Problems) Error() string { return strings.Join(p, "\n") }

// Add records a problem with variable name.
func (p *Problems) Add(name, format string, args ...any) {
	*p = append(*p, name+": "+fmt.Sprintf(format, args...))
}

// Err returns p as an error, or nil when there is no problem.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Validator is implemented by configuration structs that check their values
// after parsing.
type Validator interface {
	Validate(p *Problems)
}

// Load fills cfg, a pointer to a struct with `env` tags, from getenv (an
// empty value counts as unset, so defaults apply), then runs Validate on cfg
// and on every nested struct that implements Validator. The error, if any,
// is a Problems.
func Load(cfg any, getenv func(string) string) error {
	fields := map[string]string{} // Go field name -> variable
	environ := map[string]string{}
	collect(reflect.TypeOf(cfg).Elem(), fields)
	for _, name := range fields {
		if v := getenv(name); v != "" {
			environ[name] = v
		}
	}
	var problems Problems
	if err := env.ParseWithOptions(cfg, env.Options{Environment: environ}); err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) {
			for _, e := range agg.Errors {
				problems = append(problems, describe(e, fields, environ))
			}
		} else {
			problems = append(problems, err.Error())
		}
		return problems
	}
	validate(reflect.ValueOf(cfg), &problems)
	return problems.Err()
}

func collect(t reflect.Type, fields map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, ok := f.Tag.Lookup("env"); ok {
			fields[f.Name] = strings.Split(name, ",")[0]
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			collect(f.Type, fields)
		}
	}
}

func describe(err error, fields, environ map[string]string) string {
	var pe env.ParseError
	if errors.As(err, &pe) {
		name := fields[pe.Name]
		if name == "" {
			name = pe.Name
		}
		cause := pe.Err
		for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(u) {
			cause = u
		}
		return fmt.Sprintf("%s: cannot parse %q as %s: %v", name, environ[name], typeName(pe.Type), cause)
	}
	return err.Error()
}

func typeName(t reflect.Type) string {
	switch t.String() {
	case "time.Duration":
		return "a duration (like 30s, 15m, 168h)"
	case "bool":
		return "a boolean (true or false)"
	case "int", "int64", "int32":
		return "an integer"
	case "config.ByteSize":
		return "a size (like 512MiB, 1GiB, 1048576)"
	}
	return t.String()
}

func validate(v reflect.Value, p *Problems) {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Struct && f.CanAddr() && v.Type().Field(i).IsExported() {
			validate(f.Addr(), p)
		}
	}
	if val, ok := v.Addr().Interface().(Validator); ok {
		val.Validate(p)
	}
}
