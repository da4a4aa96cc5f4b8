// Package log is a minimal stand-in for github.com/ian-kent/go-log/log.
package log

import (
	"fmt"
	stdlog "log"
)

func Printf(format string, args ...interface{}) { stdlog.Printf(format, args...) }
func Println(args ...interface{})               { stdlog.Println(args...) }
func Fatal(args ...interface{})                 { stdlog.Fatal(args...) }
func Fatalf(format string, args ...interface{}) { stdlog.Fatalf(format, args...) }
func Info(format string, args ...interface{})   { stdlog.Print("INFO " + fmt.Sprintf(format, args...)) }
func Debug(format string, args ...interface{})  { stdlog.Print("DEBUG " + fmt.Sprintf(format, args...)) }
func Warn(format string, args ...interface{})   { stdlog.Print("WARN " + fmt.Sprintf(format, args...)) }
func Error(format string, args ...interface{})  { stdlog.Print("ERROR " + fmt.Sprintf(format, args...)) }
