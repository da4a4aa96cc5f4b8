//go:build tools

// Package tools pins the MailHog command built by hack/tools.sh.
package tools

import _ "github.com/mailhog/MailHog"
