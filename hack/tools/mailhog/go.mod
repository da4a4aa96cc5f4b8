// Pinned build module for MailHog (hack/tools.sh), the local SMTP catcher.
// Mailpit would be preferred but is not served by the Go module proxy.
module slipway.local/hack/tools/mailhog

go 1.26.0

require github.com/mailhog/MailHog v1.0.1

require (
	github.com/gorilla/context v1.1.2 // indirect
	github.com/gorilla/mux v1.8.1 // indirect
	github.com/gorilla/pat v1.0.2 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/ian-kent/envconf v0.0.0-00010101000000-000000000000 // indirect
	github.com/ian-kent/go-log v0.0.0-00010101000000-000000000000 // indirect
	github.com/ian-kent/goose v0.0.0-00010101000000-000000000000 // indirect
	github.com/ian-kent/linkio v0.0.0-00010101000000-000000000000 // indirect
	github.com/mailhog/MailHog-Server v1.0.1 // indirect
	github.com/mailhog/MailHog-UI v1.0.1 // indirect
	github.com/mailhog/data v1.0.1 // indirect
	github.com/mailhog/http v1.0.1 // indirect
	github.com/mailhog/mhsendmail v0.2.0 // indirect
	github.com/mailhog/smtp v1.0.1 // indirect
	github.com/mailhog/storage v1.0.1 // indirect
	github.com/ogier/pflag v0.0.1 // indirect
	github.com/smartystreets/goconvey v1.8.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
	gopkg.in/mgo.v2 v2.0.0-20190816093944-a6b53ec6cb22 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

// These pre-module packages are not served by the Go module proxy (403); see shims/README.md.
replace (
	github.com/ian-kent/envconf => ./shims/envconf
	github.com/ian-kent/go-log => ./shims/go-log
	github.com/ian-kent/goose => ./shims/goose
	github.com/ian-kent/linkio => ./shims/linkio
)
