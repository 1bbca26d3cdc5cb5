#!/usr/bin/env node
'use strict'
// Sends --count events ({"seq":N,"message":...}) to a Lumberjack receiver with
// one of two third-party npm clients and exits 0 once all were acknowledged:
//
//   --lib protocol  npm lumberjack-protocol 1.0.7: Lumberjack v1 (D frames of
//                   string key/values, no compression), TLS only. It sends ONE
//                   window frame per connection (W = --window, default --count)
//                   and then numbers data frames 1, 2, 3... for the whole
//                   connection.
//   --lib client    npm lumberjack-client 1.0.3: Lumberjack v2, every window a
//                   zlib C frame, plain TCP or TLS. It never reads ACKs, so this
//                   script reads them from the library's socket itself.
//
// Neither library reports acknowledgements through a public API; the script
// taps their sockets (see README.md). One JSON result line goes to stdout.

const fs = require('fs')
const { parseArgs } = require('util')

const { values: args } = parseArgs({
  options: {
    lib: { type: 'string', default: 'client' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    tls: { type: 'boolean', default: false },
    'server-name': { type: 'string' },
    count: { type: 'string', default: '1000' },
    window: { type: 'string' },
    'window-mode': { type: 'string', default: 'per-event' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
  strict: true,
})

function fail (msg, code = 2) {
  process.stderr.write(`send.js: ${msg}\n`)
  process.exit(code)
}

const count = Number(args.count)
const port = Number(args.port)
const timeoutMs = Number(args['timeout-ms'])
if (!Number.isInteger(count) || count < 1) fail(`--count must be a positive integer, not ${args.count}`)
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--port must be 1..65535, not ${args.port}`)
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) fail(`--timeout-ms must be positive, not ${args['timeout-ms']}`)

const tlsOpts = { host: args.host, port }
if (args['server-name']) tlsOpts.servername = args['server-name']
for (const k of ['ca', 'cert', 'key']) {
  if (args[k]) {
    try {
      tlsOpts[k] = k === 'ca' ? [fs.readFileSync(args[k])] : fs.readFileSync(args[k])
    } catch (e) {
      fail(`reading --${k} ${args[k]}: ${e.message}`)
    }
  }
}
const useTls = args.tls || Boolean(args.ca || args.cert)

const started = process.hrtime.bigint()
let acked = 0
let sent = 0
function finish (error) {
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const res = {
    lib: args.lib, tls: args.lib === 'protocol' || useTls, sent, acked,
    elapsed_s: Math.round(elapsed * 1000) / 1000,
    events_per_s: elapsed > 0 ? Math.round(acked / elapsed) : 0,
  }
  if (error) res.error = error
  process.stdout.write(JSON.stringify(res) + '\n')
  process.exit(error ? 1 : 0)
}
const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms: ${acked} of ${count} acknowledged`), timeoutMs)
timer.unref()

function event (seq) {
  return { seq, message: `event ${seq} from node` }
}

if (args.lib === 'protocol') {
  const lumberjack = require('lumberjack-protocol')
  const windowSize = args.window ? Number(args.window) : count
  if (!Number.isInteger(windowSize) || windowSize < 1) fail(`--window must be a positive integer, not ${args.window}`)
  const client = lumberjack.client(tlsOpts, {
    windowSize,
    maxQueueSize: count + 1, // never drop while (re)connecting
    reconnect: 200,
  })
  client.on('disconnect', (err) => {
    if (acked < count) finish(`disconnected after ${acked} of ${count} acknowledged: ${err ? err.message : 'connection closed'}`)
  })
  client.once('connect', () => {
    // The ACK value is the last acknowledged connection-wide sequence number.
    client._socket.on('ack', (seq) => {
      acked = Math.max(acked, seq)
      if (acked >= count) {
        client.close()
        finish()
      }
    })
    for (let i = 1; i <= count; i++) {
      // lumberjack-protocol turns every value into a string ("seq":"7").
      client.writeDataFrame({ line: `event ${i} from node`, seq: i })
      sent++
    }
  })
} else if (args.lib === 'client') {
  const LumberjackClient = require('lumberjack-client')
  const mode = args['window-mode']
  if (mode !== 'per-event' && mode !== 'queued') fail(`--window-mode must be per-event or queued, not ${mode}`)
  const client = new LumberjackClient(tlsOpts, useTls)
  const sock = client.socket
  const pending = [] // sizes of windows awaiting their final ACK, in send order
  let buf = Buffer.alloc(0)
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    while (buf.length >= 6) {
      if (buf[0] !== 0x32 || buf[1] !== 0x41) {
        finish(`server sent 0x${buf.subarray(0, 2).toString('hex')} where an ACK ('2A') belongs`)
        return
      }
      const value = buf.readUInt32BE(2)
      buf = buf.subarray(6)
      if (value === 0) continue // keep-alive
      if (pending.length === 0) { finish(`unexpected ACK ${value} with no window outstanding`); return }
      if (value > pending[0]) { finish(`ACK ${value} exceeds window of ${pending[0]}`); return }
      if (value === pending[0]) {
        acked += pending.shift()
        if (acked >= count) {
          sock.destroy()
          finish()
        }
      }
    }
  })
  sock.on('close', () => { if (acked < count) finish(`connection closed after ${acked} of ${count} acknowledged`) })
  if (mode === 'queued') {
    // Logged while connecting: the library sends them as ONE window on connect.
    for (let i = 1; i <= count; i++) { client.log(event(i)); sent++ }
    pending.push(count)
  } else {
    // Once connected every log() call is its own window of one event.
    sock.once(useTls ? 'secureConnect' : 'connect', () => {
      for (let i = 1; i <= count; i++) { pending.push(1); client.log(event(i)); sent++ }
    })
  }
} else {
  fail(`--lib must be protocol or client, not ${args.lib}`)
}
