module github.com/ian-kent/envconf

go 1.21
