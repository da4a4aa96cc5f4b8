# shellcheck shell=bash
# Certificates and kubeconfigs of the local clusters (openssl, one CA per cluster).
# Sourced by hack/cluster.sh and hack/node.sh after lib.sh; do not execute it.

# write_openssl_conf FILE: the minimal config used for every certificate.
write_openssl_conf() {
  cat >"$1" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = @sans
[sans]
DNS.1 = localhost
DNS.2 = kubernetes
DNS.3 = kubernetes.default
DNS.4 = kubernetes.default.svc
DNS.5 = kubernetes.default.svc.cluster.local
DNS.6 = NODE_NAME
IP.1 = 127.0.0.1
IP.2 = SERVICE_FIRST_IP
IP.3 = NODE_ADDRESS
EOF
  # One SAN list for every serving certificate (kube-apiserver, the real node's kubelet):
  # a local test CA, so a shared list is simpler than one config per server.
  sed -i "s/SERVICE_FIRST_IP/$SERVICE_FIRST_IP/; s/NODE_ADDRESS/$NODE_ADDRESS/; s/NODE_NAME/$NODE_NAME/" "$1"
}

# sign PKI NAME SUBJECT EXTENSION [CA]: key + certificate signed by CA (default: the cluster CA).
sign() {
  local pki="$1" name="$2" subj="$3" ext="$4" ca="${5:-ca}"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -config "$pki/openssl.cnf" \
    -out "$pki/$name.csr"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$pki/openssl.cnf" -extensions "$ext" \
    -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}

# write_kubeconfig FILE SERVER PKI USER: self-contained kubeconfig (embedded certs).
write_kubeconfig() {
  local file="$1" server="$2" pki="$3" user="$4" ctx="$5"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $ctx
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: $ctx
  context:
    cluster: $ctx
    user: $user
    namespace: default
current-context: $ctx
EOF
  chmod 600 "$file"
}
