module github.com/ian-kent/goose

go 1.21
