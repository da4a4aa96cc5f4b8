// Pins Traefik, the ingress controller of the real node (hack/node/traefik.yaml), by the
// checksum in go.sum. hack/tools.sh builds it inside the module's own source tree, with the
// go.mod and go.sum shipped there, because Traefik's replace directives (its forks of
// go-http-auth, mux and minheap) only apply to a main module. There is no tools.go: this
// module never builds anything itself.
//
// Why v3.6.12 and not the newer v3.7.x the proxy also serves: v3.7's go.mod replaces
// github.com/traefik/traefik/dynamic/ext by ./pkg/config/dynamic/ext, a nested module that
// the module zip leaves out, and it needs github.com/go-acme/lego/v5 v5.4.1, which
// proxy.golang.org refuses (403).
module slipway.local/hack/tools/traefik

go 1.26.0

require github.com/traefik/traefik/v3 v3.6.12
