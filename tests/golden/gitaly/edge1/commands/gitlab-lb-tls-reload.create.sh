#!/bin/sh
set -eu
cd /srv/gitlab-cluster/nginx/tls
new_cert=cert.pem; [ -f new/cert.pem ] && new_cert=new/cert.pem
new_key=key.pem; [ -f new/key.pem ] && new_key=new/key.pem
if [ "$new_cert" = cert.pem ] && [ "$new_key" = key.pem ]; then
    echo "TLS certificate and key unchanged in /srv/gitlab-cluster/nginx/tls"
    exit 0
fi
refuse() {
    echo "TLS: $1; nothing replaced: nginx keeps the current certificate and key in /srv/gitlab-cluster/nginx/tls" >&2
    exit 1
}
command -v openssl >/dev/null 2>&1 || refuse "openssl is needed on this host to check that the certificate and the key belong together"
cert_public=$(openssl x509 -noout -pubkey -in "$new_cert" 2>/dev/null | openssl pkey -pubin -pubout 2>/dev/null) || cert_public=
[ -n "$cert_public" ] || refuse "$new_cert is not a PEM certificate"
key_public=$(openssl pkey -in "$new_key" -passin pass: -pubout 2>/dev/null) || key_public=
[ -n "$key_public" ] || refuse "$new_key is not an unencrypted PEM private key"
[ "$cert_public" = "$key_public" ] || refuse "the certificate ($new_cert) and the private key ($new_key) do not match: their public keys differ"
if [ "$new_key" != key.pem ]; then mv -f new/key.pem key.pem; fi
if [ "$new_cert" != cert.pem ]; then mv -f new/cert.pem cert.pem; fi
echo "TLS certificate and key installed in /srv/gitlab-cluster/nginx/tls"
if docker inspect gitlab-lb >/dev/null 2>&1; then docker exec gitlab-lb nginx -t -q -c /etc/nginx/gitlab-cluster/nginx.conf && docker exec gitlab-lb nginx -s reload -c /etc/nginx/gitlab-cluster/nginx.conf && echo "nginx reloaded"; fi
