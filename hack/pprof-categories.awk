# Sums a CPU profile printed by `go tool pprof -traces` by category (hack/bench-controller.sh):
# each sample goes to the category of the innermost frame of its stack that matches one (leaf
# first), else "other"; prints each category's share of the samples, largest first.
function ms(v) { if (v ~ /ms$/) return v + 0; if (v ~ /us$/) return (v + 0) / 1000; if (v ~ /ns$/) return (v + 0) / 1e6; if (v ~ /s$/) return (v + 0) * 1000; return v + 0 }
function category(f) {
  if (f ~ /runtime\.gcBgMarkWorker|runtime\.gcAssist|runtime\.mallocgc|runtime\.bgsweep|runtime\.bgscavenge/) return "memory: allocation and garbage collection"
  if (f ~ /fieldmanager|structured-merge-diff/) return "server-side apply: managed fields"
  if (f ~ /admission/) return "admission (built-in plugins and webhooks)"
  if (f ~ /crypto\/tls|http2|net\/http\.\(\*conn\)|internal\/poll|syscall/) return "connections: TLS, HTTP/2, syscalls"
  if (f ~ /etcd3\.|go\.etcd\.io|grpc/) return "storage: etcd3 store and client"
  if (f ~ /cacher\.|watchcache|WatchServer/) return "watch cache and watchers"
  if (f ~ /encoding\/json|sigs\.k8s\.io\/json|json-iterator|protobuf|serializer|runtime\.Encode|runtime\.Decode|conversion|Convert_/) return "encoding, decoding, conversion"
  if (f ~ /authentication|authorization|rbac/) return "authentication and authorization"
  return ""
}
function flush() { if (value != "") { c = (cat == "" ? "other" : cat); sum[c] += value; total += value } value = ""; cat = "" }
/^-+\+-+/ { flush(); next }
/^ +[0-9.]+(ms|s|us|ns) +/ { value = ms($1); f = $2; if (cat == "") cat = category(f); next }
value != "" && /^ +[^ ]/ { if (cat == "") cat = category($1); next }
END { flush(); for (c in sum) printf "  %5.1f%%  %s\n", 100 * sum[c] / total, c | "sort -rn"; close("sort -rn"); printf "  (%.1f CPU-s sampled)\n", total / 1000 }
