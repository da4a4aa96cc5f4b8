module github.com/ian-kent/go-log

go 1.21
