// Command probe is the tiny program inside dockcast's test image (FROM
// scratch). Arguments, processed in order:
//
//	healthy-for D   create /healthy now and remove it after D
//	sleep D         sleep D
//	health          exit 0 if /healthy exists, else 1 (a health check)
//	fail            exit 1
//	exit N          exit N
//
// Without arguments it exits 0 at once.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "health":
			if _, err := os.Stat("/healthy"); err != nil {
				os.Exit(1)
			}
			os.Exit(0)
		case "fail":
			os.Exit(1)
		case "exit":
			code := 2
			if i+1 < len(args) {
				if _, err := fmt.Sscan(args[i+1], &code); err != nil {
					code = 2
				}
			}
			os.Exit(code)
		case "sleep", "healthy-for":
			if i+1 >= len(args) {
				fmt.Fprintln(os.Stderr, args[i], "needs a duration")
				os.Exit(2)
			}
			d, err := time.ParseDuration(args[i+1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if args[i] == "sleep" {
				time.Sleep(d)
			} else {
				if err := os.WriteFile("/healthy", nil, 0o644); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				time.AfterFunc(d, func() { _ = os.Remove("/healthy") })
			}
			i++
		default:
			fmt.Fprintln(os.Stderr, "unknown argument", args[i])
			os.Exit(2)
		}
	}
}
