/**
 * alertd feed: reports this Botpress node's counters to the alertd running beside it.
 *
 * Install as `data/global/hooks/after_server_start/alertd_feed.js` on every node and
 * restart Botpress, or as the module `alertd-feed` (../../module, ../../pack-module.sh),
 * which runs this same code outside the sandbox. Botpress hooks see only environment variables named EXPOSED_*:
 *
 *   EXPOSED_ALERTD_URL       alertd's address on this node, e.g. http://127.0.0.1:7373
 *                            (required; without it the feed stays off and says so)
 *   EXPOSED_ALERTD_TOKEN     alertd's API token (`ALERTD_TOKEN`), when it has one
 *   EXPOSED_ALERTD_INTERVAL  seconds between two reports (default 5)
 *
 * Counted as Botpress Pro's own monitoring counted them:
 *   eventsIn.count, eventsOut.count       every incoming and outgoing event, by a
 *                                         middleware that runs first and passes it on
 *   requests.count, requests.latency_sum  every HTTP response of this node's server
 *                                         (the one on process.PORT), timed to its headers
 *   warnings.count, errors.count,         every logger.warn, logger.error and
 *   criticals.count                       logger.critical
 *
 * and the same per bot, for the bot health of alertd's monitoring page:
 *   bot.BOT.eventsIn.count, bot.BOT.eventsOut.count   the events of bot BOT
 *   bot.BOT.warnings.count, bot.BOT.errors.count,     the log calls of a logger for bot BOT
 *   bot.BOT.criticals.count                           (bp.logger.forBot(BOT))
 * for a bot id of the letters, digits, `_` and `-` alertd takes in a field name (1 to 100
 * of them); another bot's counts go to the node's only.
 *
 * Botpress runs global hooks in a vm2 sandbox unless DISABLE_GLOBAL_SANDBOX=true. In the
 * sandbox a hook can register middleware but cannot reach the HTTP server nor the logger
 * class (modules it requires are read-only there, and a host object's prototype shows as
 * the sandbox's own), so there the feed counts events only and says so when it starts.
 * Set DISABLE_GLOBAL_SANDBOX=true in Botpress' environment to count all seven.
 *
 * Every interval the counts gathered since the last report are POSTed to
 * `/api/v1/metrics`, which adds them to alertd's next sample of this node. Each report
 * carries an `Idempotency-Key` of its own. When alertd refuses the connection, answers
 * 429 or 5xx, or does not answer at all (the request was sent, the answer never came),
 * the same report goes again, with the same key, before any new counts: alertd counts a
 * key once, so a report that did arrive the first time is not counted twice. A report
 * still unsent after KEEP_REPORT_MS (shorter than alertd's `server.idempotencyWindow`, 10
 * minutes by default) is dropped, and said. Nothing here can fail a request, an event or
 * a log call: the counting is wrapped, and errors of the feed itself are logged once per
 * outage.
 */

const http = require('http')
const https = require('https')
const { URL } = require('url')

const FIELDS = [
  'requests.count',
  'requests.latency_sum',
  'eventsIn.count',
  'eventsOut.count',
  'warnings.count',
  'errors.count',
  'criticals.count'
]
// Marks the feed as running in this process, so that a second run counts nothing twice:
// on `bp` (the same object for every hook) and on the HTTP server class (the same for a
// module's every load; read-only, so unmarked, in the sandbox).
const MARK = '__alertdFeed'
const SEND_TIMEOUT_MS = 3000
// How long a report is sent again before it is dropped: well inside alertd's
// server.idempotencyWindow (10 minutes by default), within which a key is counted once.
const KEEP_REPORT_MS = 5 * 60 * 1000

const settings = readSettings(process.env || {})
if (typeof settings === 'string') {
  bp.logger.warn(`alertd feed is off: ${settings}`)
  return
}
if (bp[MARK] || http.Server.prototype[MARK]) {
  bp.logger.info('alertd feed: already running in this process')
  return
}
bp[MARK] = true
try {
  http.Server.prototype[MARK] = true
} catch (err) {
  // Read-only in the sandbox, where the mark on `bp` does.
}

const counts = {}
FIELDS.forEach(field => (counts[field] = 0))
const add = (field, value) => {
  counts[field] = (counts[field] || 0) + value
}
// The bot's own counter beside the node's, for a bot id that can be part of a field name.
const BOT_ID = /^[A-Za-z0-9_-]{1,100}$/
const addForBot = (botId, field, value) => {
  if (typeof botId === 'string' && BOT_ID.test(botId)) {
    add(`bot.${botId}.${field}`, value)
  }
}

countEvents()
const requests = countRequests(Number(process.PORT) || undefined)
const logs = countLogs()
if (!requests || !logs) {
  const missing = [
    requests ? [] : ['requests.count', 'requests.latency_sum'],
    logs ? [] : ['warnings.count', 'errors.count', 'criticals.count']
  ]
  bp.logger.warn(
    `alertd feed: ${[].concat(...missing).join(', ')} not counted: this hook runs in the sandbox, out of reach of ` +
      `Botpress' ${requests ? '' : 'HTTP server'}${requests || logs ? '' : ' and '}${logs ? '' : 'loggers'} ` +
      '(set DISABLE_GLOBAL_SANDBOX=true to count them)'
  )
}

let sending = false
let failing = false
const timer = setInterval(report, settings.intervalMs)
if (timer && typeof timer.unref === 'function') {
  timer.unref()
}
bp.logger.info(`alertd feed: reporting to ${settings.url.origin} every ${settings.intervalMs / 1000}s`)

function readSettings(env) {
  const address = env.EXPOSED_ALERTD_URL
  if (!address) {
    return 'set EXPOSED_ALERTD_URL to the address of alertd on this node (e.g. http://127.0.0.1:7373)'
  }
  let url
  try {
    url = new URL('/api/v1/metrics', address)
  } catch (err) {
    return `EXPOSED_ALERTD_URL "${address}" is not a URL`
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `EXPOSED_ALERTD_URL "${address}" is neither http nor https`
  }
  const interval = env.EXPOSED_ALERTD_INTERVAL === undefined ? 5 : Number(env.EXPOSED_ALERTD_INTERVAL)
  if (!(interval >= 0.05 && interval <= 3600)) {
    return `EXPOSED_ALERTD_INTERVAL "${env.EXPOSED_ALERTD_INTERVAL}" is not a number of seconds between 0.05 and 3600`
  }
  return { url, token: env.EXPOSED_ALERTD_TOKEN || '', intervalMs: Math.round(interval * 1000) }
}

// Counts each response of the server listening on `port` (or of every server, when the
// port is unknown) once its headers are written, with the time taken to get there.
// Answers whether it could: in the sandbox `http` is read-only and nothing changes.
function countRequests(port) {
  const ours = new WeakMap()
  const isOurs = server => {
    if (port === undefined) {
      return true
    }
    if (!ours.has(server)) {
      const address = server.address()
      if (!address) {
        return false
      }
      ours.set(server, address.port === port)
    }
    return ours.get(server)
  }
  const patch = Server => {
    const emit = Server.prototype.emit
    const counting = function(type, request, response) {
      if (type === 'request' && response) {
        try {
          if (isOurs(this)) {
            timeResponse(response)
          }
        } catch (err) {
          // Counting never gets in the way of a request.
        }
      }
      return emit.apply(this, arguments)
    }
    try {
      Server.prototype.emit = counting
    } catch (err) {
      return false
    }
    return Server.prototype.emit === counting
  }
  const plain = patch(http.Server)
  return patch(https.Server) && plain
}

function timeResponse(response) {
  const started = Date.now()
  const writeHead = response.writeHead
  response.writeHead = function() {
    response.writeHead = writeHead
    add('requests.count', 1)
    add('requests.latency_sum', Date.now() - started)
    return writeHead.apply(this, arguments)
  }
}

function countEvents() {
  const counter = (direction, field) => ({
    name: `alertd.${field}`,
    description: `Counts ${direction} events for alertd (${field})`,
    direction,
    order: 0,
    handler: (event, next) => {
      add(field, 1)
      addForBot(event && event.botId, field, 1)
      next()
    }
  })
  bp.events.registerMiddleware(counter('incoming', 'eventsIn.count'))
  bp.events.registerMiddleware(counter('outgoing', 'eventsOut.count'))
}

// Every Botpress logger shares one class: counting its warn, error and critical counts them
// all.
// Answers whether it could: inside the sandbox a host object's prototype shows as the
// sandbox's own Object.prototype, which must not be touched (every object would change).
function countLogs() {
  const shared = Object.getPrototypeOf(bp.logger)
  const own = method =>
    shared &&
    shared !== Object.prototype &&
    Object.prototype.hasOwnProperty.call(shared, method) &&
    typeof shared[method] === 'function'
  if (!own('warn') || !own('error')) {
    return false
  }
  const wrap = (method, field) => {
    const original = shared[method]
    shared[method] = function() {
      add(field, 1)
      try {
        // The bot a logger was made for (`forBot`), until it prints.
        addForBot(this && this.botId, field, 1)
      } catch (err) {
        // A logger whose bot cannot be read counts for the node only.
      }
      return original.apply(this, arguments)
    }
  }
  wrap('warn', 'warnings.count')
  wrap('error', 'errors.count')
  if (own('critical')) {
    wrap('critical', 'criticals.count')
  }
  return true
}

// The report being sent, or to send again: its counts, its Idempotency-Key, when it was made.
let pending = null
let reports = 0

function newKey() {
  reports += 1
  const random = Math.random().toString(36).slice(2, 12)
  return `alertd-feed-${process.pid}-${Date.now().toString(36)}-${reports}-${random}`
}

function report() {
  if (sending) {
    return
  }
  if (pending && Date.now() - pending.made > KEEP_REPORT_MS) {
    bp.logger.warn(
      `alertd feed: a report unsent for ${KEEP_REPORT_MS / 60000} minutes is dropped: ${JSON.stringify(pending.body)}`
    )
    pending = null
  }
  if (!pending) {
    const body = {}
    let any = false
    Object.keys(counts).forEach(field => {
      if (counts[field] !== 0) {
        body[field] = counts[field]
        counts[field] = 0
        any = true
      }
    })
    if (!any) {
      return
    }
    pending = { body, key: newKey(), made: Date.now() }
  }
  sending = true
  send(pending, (outcome, detail) => {
    sending = false
    if (outcome === 'sent' || outcome === 'dropped') {
      pending = null
    }
    if (outcome === 'sent') {
      if (failing) {
        failing = false
        bp.logger.info(`alertd feed: reporting again to ${settings.url.origin}`)
      }
    } else if (!failing) {
      failing = true
      const what = {
        kept: 'counts kept for the next report',
        unknown: 'the same report goes again with the same Idempotency-Key',
        dropped: 'counts dropped'
      }[outcome]
      bp.logger.warn(`alertd feed: ${settings.url.href}: ${detail}; ${what}`)
    }
  })
}

// Calls `done` once with 'sent', 'kept' (alertd surely did not take them), 'unknown' (sent,
// and no answer came) or 'dropped' (alertd refused them).
function send(report, done) {
  const payload = JSON.stringify(report.body)
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(payload),
    'Idempotency-Key': report.key
  }
  if (settings.token) {
    headers.Authorization = `Bearer ${settings.token}`
  }
  let finished = false
  const finish = (outcome, detail) => {
    if (!finished) {
      finished = true
      done(outcome, detail)
    }
  }
  let written = false
  const client = settings.url.protocol === 'https:' ? https : http
  const request = client.request(settings.url, { method: 'POST', headers, timeout: SEND_TIMEOUT_MS }, response => {
    let text = ''
    response.setEncoding('utf8')
    response.on('data', chunk => {
      if (text.length < 500) {
        text += chunk
      }
    })
    response.on('end', () => {
      const status = response.statusCode
      if (status >= 200 && status < 300) {
        finish('sent')
      } else if (status === 429 || status >= 500) {
        finish('kept', `alertd answered ${status} ${text.trim()}`)
      } else {
        finish('dropped', `alertd refused them: ${status} ${text.trim()}`)
      }
    })
    response.on('error', err => finish('unknown', `the answer broke off: ${err.message}`))
  })
  request.on('finish', () => (written = true))
  request.on('timeout', () => request.destroy(new Error(`no answer within ${SEND_TIMEOUT_MS} ms`)))
  request.on('error', err => finish(written ? 'unknown' : 'kept', err.message))
  request.end(payload)
}
