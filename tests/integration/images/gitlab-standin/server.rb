#!/usr/bin/ruby
# frozen_string_literal: true
#
# STAND-IN for the HTTP side of a GitLab Omnibus node (gitlab-cluster-test).
# It is NOT GitLab: no Rails, no Workhorse, no database. It exists so that the
# load balancer, health checks, large bodies and websocket proxying can be
# tested without the real image (which cannot be pulled here).
#
#   GET  /-/readiness   200 {"status":"ok",...}; 503 while /run/standin-not-ready
#                       exists or the last `gitlab-ctl reconfigure` failed, or
#                       (Gitaly tier) while a Gitaly named by tcp:// in
#                       gitlab_rails['repositories_storages'] does not answer its
#                       health call with gitlab_rails['gitaly_token'] (result
#                       reused 5 s; the reason names the storage, address and
#                       error). NOTE: real GitLab checks Gitaly in readiness only
#                       with ?all=1; the stand-in always does, unless the container
#                       has GITLAB_STANDIN_GITALY_READINESS=all-only (real semantics).
#   GET  /-/liveness    200 {"status":"ok"}
#   GET  /-/health      200 "GitLab OK"
#   GET  /-/standin/headers  200, the request line + headers as JSON (to check
#                       what the balancer forwards: Host, X-Forwarded-*, ...)
#   GET  /              200 HTML page naming the node ($NODE_NAME)
#   POST|PUT *          reads the whole body (Content-Length or chunked),
#                       200 {"bytes":N,"node":...}
#   Upgrade: websocket  101 with Sec-WebSocket-Accept, then echoes frames
#                       until the client closes
#   anything, while `gitlab-ctl stop puma` is in effect: 502 (like the real
#   nginx in front of a stopped Puma)
# Every response carries `X-Standin-Node: $NODE_NAME` and `Connection: close`.
# One thread per connection; no keep-alive.
require 'socket'
require 'json'
require 'digest/sha1'
require 'base64'
require_relative 'standin_lib'

NODE = ENV['NODE_NAME'].to_s.empty? ? Socket.gethostname : ENV['NODE_NAME']
PORTS = (ENV['STANDIN_HTTP_PORTS'] || '80').split(/[ ,]+/).map(&:to_i)
NOT_READY_FILE = '/run/standin-not-ready'
RECONFIGURE_FAILED = File.join(Standin::VAR, 'standin-reconfigure.failed')
STOPPED_DIR = File.join(Standin::RUN, 'stopped')
WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

$stdout.sync = true
def log(msg) = puts("#{Time.now.utc.strftime('%FT%TZ')} standin[#{NODE}] #{msg}")

Conn = Standin::Conn

# The settings of the last successful reconfigure (re-read when the file changes).
SAVED = { stamp: nil, settings: nil }
SAVED_MUTEX = Mutex.new
def saved_settings
  SAVED_MUTEX.synchronize do
    st = (File.stat(Standin::SAVED_SETTINGS) rescue nil)
    stamp = st && [st.ino, st.mtime.to_r, st.size]
    SAVED.update(stamp: stamp, settings: Standin.saved_settings) if stamp != SAVED[:stamp]
    SAVED[:settings]
  end
end

GITALY_HEALTH = Standin::Gitaly::HealthCache.new
# Gitaly tier: [[reason, ...], [gitaly_check entries]] for the repository storages on a Gitaly of
# another node (tcp:// addresses); none without repositories_storages (the NFS layout).
def gitaly_readiness
  s = saved_settings
  return [[], []] unless s && Standin::Gitaly.remote?(s)

  results = GITALY_HEALTH.check(Standin::Gitaly.clients(s))
  reasons = results.reject { |_, ok, _| ok }.map { |_, _, why| why }
  checks = results.map { |c, ok, why| { status: ok ? 'ok' : 'failed', labels: { shard: c.name }, message: ok ? nil : why }.compact }
  [reasons, checks]
end

def respond(c, status, reason, body, type = 'application/json', extra = {})
  body = body.to_json unless body.is_a?(String)
  hdr = +"HTTP/1.1 #{status} #{reason}\r\n"
  hdr << "Content-Type: #{type}\r\nContent-Length: #{body.bytesize}\r\n"
  hdr << "X-Standin-Node: #{NODE}\r\nConnection: close\r\n"
  extra.each { |k, v| hdr << "#{k}: #{v}\r\n" }
  c.write(hdr + "\r\n" + body)
  status
end

def read_body(c, headers)
  if headers['transfer-encoding'].to_s.downcase.include?('chunked')
    total = 0
    loop do
      size = c.gets_line.split(';').first.to_i(16)
      if size.zero?
        nil until c.gets_line.empty? # trailers
        return total
      end
      total += c.discard(size)
      c.read_exact(2)
    end
  else
    c.discard(headers['content-length'].to_i)
  end
end

def websocket(c, headers)
  key = headers['sec-websocket-key'].to_s
  return respond(c, 400, 'Bad Request', { error: 'missing Sec-WebSocket-Key' }) if key.empty?

  accept = Base64.strict_encode64(Digest::SHA1.digest(key + WS_GUID))
  c.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
          "Sec-WebSocket-Accept: #{accept}\r\nX-Standin-Node: #{NODE}\r\n\r\n")
  loop do # echo frames until close; a close frame is answered with close
    b0, b1 = c.read_exact(2).bytes
    opcode = b0 & 0x0f
    len = b1 & 0x7f
    len = c.read_exact(2).unpack1('n') if len == 126
    len = c.read_exact(8).unpack1('Q>') if len == 127
    mask = (b1 & 0x80).zero? ? nil : c.read_exact(4).bytes
    data = c.read_exact(len).bytes
    data = data.each_with_index.map { |b, i| b ^ mask[i % 4] } if mask
    payload = data.pack('C*')
    out_len = payload.bytesize
    hdr = [0x80 | opcode].pack('C')
    hdr << (out_len < 126 ? [out_len].pack('C') : out_len < 65_536 ? [126, out_len].pack('Cn') : [127, out_len].pack('CQ>'))
    c.write(hdr + payload)
    break if opcode == 0x8
  end
  101
rescue EOFError, IOError, Errno::ECONNRESET
  101
end

def handle(sock)
  c = Conn.new(sock)
  peer = (sock.remote_address.ip_address rescue '?')
  request_line = c.gets_line
  meth, path, = request_line.split(' ', 3)
  headers = {}
  while (line = c.gets_line) && !line.empty?
    k, v = line.split(':', 2)
    headers[k.strip.downcase] = v.to_s.strip
  end
  status =
    if File.exist?(File.join(STOPPED_DIR, 'puma')) && !headers['upgrade']
      read_body(c, headers) if %w[POST PUT PATCH].include?(meth)
      respond(c, 502, 'Bad Gateway', "502 Bad Gateway (stand-in: puma stopped)\n", 'text/plain')
    elsif headers['upgrade'].to_s.downcase == 'websocket'
      websocket(c, headers)
    elsif %w[POST PUT PATCH].include?(meth)
      n = read_body(c, headers)
      respond(c, 200, 'OK', { bytes: n, node: NODE, method: meth, path: path })
    else
      case path.to_s.split('?').first
      when '/-/readiness'
        reasons = []
        reasons << NOT_READY_FILE if File.exist?(NOT_READY_FILE)
        reasons << 'gitlab-ctl reconfigure failed' if File.exist?(RECONFIGURE_FAILED)
        all = path.to_s.split('?', 2)[1].to_s.split('&').include?('all=1')
        gitaly_reasons, gitaly_checks = all || ENV['GITLAB_STANDIN_GITALY_READINESS'] != 'all-only' ? gitaly_readiness : [[], []]
        reasons.concat(gitaly_reasons)
        extra = gitaly_checks.empty? ? {} : { gitaly_check: gitaly_checks }
        if reasons.empty?
          respond(c, 200, 'OK', { status: 'ok', master_check: [{ status: 'ok' }], **extra, node: NODE })
        else
          respond(c, 503, 'Service Unavailable', { status: 'failed', reasons: reasons, **extra, node: NODE })
        end
      when '/-/liveness' then respond(c, 200, 'OK', { status: 'ok' })
      when '/-/health' then respond(c, 200, 'OK', "GitLab OK\n", 'text/plain')
      when '/-/standin/headers'
        respond(c, 200, 'OK', { request: request_line, peer: peer, headers: headers, node: NODE })
      when '/'
        respond(c, 200, 'OK', "<!DOCTYPE html><html><head><title>GitLab stand-in #{NODE}</title></head>" \
                              "<body><h1>GitLab stand-in</h1><p>node: <b id=\"node\">#{NODE}</b></p>" \
                              "<p>This is not GitLab; it is the gitlab-cluster-test stand-in.</p></body></html>\n",
                'text/html; charset=utf-8')
      else respond(c, 404, 'Not Found', { error: 'not found', path: path, node: NODE })
      end
    end
  log("#{peer} \"#{request_line}\" #{status}")
rescue StandardError => e
  log("#{peer} error: #{e.class}: #{e.message}") unless e.is_a?(EOFError)
ensure
  c&.close
end

servers = PORTS.map { |p| TCPServer.new('0.0.0.0', p) }
log("listening on #{PORTS.join(',')}")
Signal.trap('TERM') { exit 0 }
servers.map do |srv|
  Thread.new do
    loop do
      sock = srv.accept
      Thread.new(sock) { |s| handle(s) }
    end
  end
end.each(&:join)
