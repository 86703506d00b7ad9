#!/usr/bin/ruby
# frozen_string_literal: true
# gitlab-cluster-test helper: websocket round trip.
# Usage: ws_check.rb HOST PORT [PATH] [Host-header]
# Sends an upgrade, checks 101 + Sec-WebSocket-Accept, sends one masked text
# frame and expects it echoed (the stand-in server echoes). Exit 0 on success.
require 'socket'
require 'digest/sha1'
require 'base64'
require 'securerandom'
require 'timeout'

host, port, path, vhost = ARGV[0], (ARGV[1] || 80).to_i, ARGV[2] || '/-/cable', ARGV[3]
key = Base64.strict_encode64(SecureRandom.random_bytes(16))
want = Base64.strict_encode64(Digest::SHA1.digest(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'))
Timeout.timeout(15) do
  s = TCPSocket.new(host, port)
  s.write("GET #{path} HTTP/1.1\r\nHost: #{vhost || host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
          "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
  status = s.gets.to_s
  headers = {}
  while (l = s.gets) && l != "\r\n"
    k, v = l.split(':', 2)
    headers[k.downcase] = v.to_s.strip
  end
  abort "no 101: #{status.strip}" unless status.start_with?('HTTP/1.1 101')
  abort "bad Sec-WebSocket-Accept #{headers['sec-websocket-accept']}" unless headers['sec-websocket-accept'] == want
  msg = "hello from ws_check #{SecureRandom.hex(4)}"
  mask = SecureRandom.random_bytes(4).bytes
  s.write([0x81, 0x80 | msg.bytesize].pack('CC') + mask.pack('C*') +
          msg.bytes.each_with_index.map { |b, i| b ^ mask[i % 4] }.pack('C*'))
  b0, b1 = s.read(2).bytes
  got = s.read(b1 & 0x7f)
  abort "echo mismatch: #{got.inspect}" unless (b0 & 0x0f) == 1 && got == msg
  s.write([0x88, 0x80].pack('CC') + mask.pack('C*')) # close
  puts "websocket ok: 101, accept ok, echoed #{msg.bytesize} bytes (node #{headers['x-standin-node']})"
end
