#!/usr/bin/env node
// Runs a global `after_server_start` hook the way Botpress v12 runs it, beside the parts of
// a Botpress server that the alertd feed touches, and makes that server busy on demand.
//
//   node harness.js HOOK_FILE [--mode vm2|trusted] [--runs N]
//   node harness.js MODULE_DIR --mode module [--runs N]
//
// Modes: `vm2` (Botpress' default) runs the file in a vm2 NodeVM with `wrapper: 'none'`,
// the hook's arguments as its sandbox, the filtered `process` (HOST, PORT, EXPOSED_*
// variables) and `require` resolved outside the sandbox; `trusted` (DISABLE_GLOBAL_SANDBOX)
// runs it as the body of `new Function(bp, process, printObject, require)`; `module` loads
// a module folder as Botpress' module loader does (`require` of the folder, its `default`
// export or itself, checked against the entry point's shape) and calls `onServerReady(bp)`.
//
// The server: a `bp` with `events.registerMiddleware`/`sendEvent` and a logger class shared
// by every logger, an HTTP server on process.PORT that answers after `delayMs`, and a
// second HTTP server on another port, whose requests are not the bot's.
//
// Commands, one JSON object per line on stdin, each answered by one JSON line on stdout
// once done: {"requests": N, "other": N, "incoming": N, "outgoing": N, "warnings": N,
// "errors": N, "criticals": N, "strange": N, "delayMs": N}. Events and warnings and criticals
// are bot `b`'s, errors no bot's; `strange` events are of a bot whose id cannot be in a field
// name. The answer holds the totals generated so far.
'use strict'

const http = require('http')
const path = require('path')
const fs = require('fs')
const readline = require('readline')

const args = process.argv.slice(2)
const hookFile = args[0]
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : args[at + 1]
}
const mode = option('mode', 'vm2')
const runs = Number(option('runs', '1'))

// The logger: one class behind every logger of the server, as in Botpress.
class Logger {
  constructor(name) {
    this.name = name
  }
  forBot(botId) {
    this.botId = botId
    return this
  }
  attachError(error) {
    this.attachedError = error
    return this
  }
  print(level, message) {
    process.stderr.write(`${level} ${this.name} ${message}\n`)
    this.botId = undefined
    this.attachedError = undefined
  }
  debug(message) {
    this.print('debug', message)
  }
  info(message) {
    this.print('info', message)
  }
  warn(message) {
    this.print('warn', message)
  }
  error(message) {
    this.print('error', message)
  }
  critical(message) {
    this.print('critical', message)
  }
}

// The event engine's middleware chains, each sorted by order, as `registerMiddleware` keeps them.
const chains = { incoming: [], outgoing: [] }
const events = {
  registerMiddleware(middleware) {
    const { name, direction, order, handler, description } = middleware
    if (typeof name !== 'string' || typeof handler !== 'function' || typeof order !== 'number') {
      throw new Error(`invalid middleware ${JSON.stringify(middleware)}`)
    }
    if (typeof description !== 'string' || !(direction in chains)) {
      throw new Error(`invalid middleware ${name}`)
    }
    chains[direction] = chains[direction].filter(m => m.name !== name).concat([middleware])
    chains[direction].sort((a, b) => a.order - b.order)
  },
  sendEvent(event) {
    const chain = chains[event.direction]
    return new Promise((resolve, reject) => {
      const step = at => {
        if (at === chain.length) {
          return resolve(event)
        }
        chain[at].handler(event, (err, swallow) => {
          if (err) {
            return reject(err)
          }
          swallow ? resolve(event) : step(at + 1)
        })
      }
      step(0)
    })
  }
}

const core = new Logger('Server')
const bp = { logger: new Logger('Hooks'), events }

const listen = handler =>
  new Promise(resolve => {
    const server = http.createServer(handler)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })

let delayMs = 0
const totals = { requests: 0, other: 0, incoming: 0, outgoing: 0, strange: 0, warnings: 0, errors: 0, criticals: 0 }

const get = port =>
  new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/api/v1/bots', agent: false }, response => {
        response.resume()
        response.on('end', resolve)
      })
      .on('error', reject)
  })

function loadModule(folder) {
  const exported = require(path.resolve(folder))
  const entryPoint = exported.default ? exported.default : exported
  const { definition, onServerReady } = entryPoint
  if (!definition || typeof definition.name !== 'string' || typeof onServerReady !== 'function') {
    throw new Error(`${folder} is not a module entry point with a definition.name and onServerReady`)
  }
  return onServerReady(bp)
}

function runHook(code, filename) {
  const sandboxProcess = {
    HOST: '127.0.0.1',
    PORT: process.PORT,
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('EXPOSED_')))
  }
  const printObject = value => value
  const hookRequire = name => require(name)
  if (mode === 'trusted') {
    const fn = new Function('bp', 'process', 'printObject', 'require', code)
    return Promise.resolve(fn(bp, sandboxProcess, printObject, hookRequire))
  }
  const { NodeVM, VMScript } = require('vm2')
  const vm = new NodeVM({
    wrapper: 'none',
    console: 'inherit',
    sandbox: { bp, process: sandboxProcess, printObject },
    timeout: 1000,
    require: { external: true, mock: new Proxy({}, { get: (_target, name) => hookRequire(name) }) }
  })
  return Promise.resolve(vm.run(new VMScript(code, { filename })))
}

async function main() {
  const server = await listen((request, response) => {
    setTimeout(() => response.end('ok'), delayMs)
  })
  const other = await listen((request, response) => response.end('other'))
  process.PORT = server.address().port

  for (let run = 0; run < runs; run++) {
    if (mode === 'module') {
      await loadModule(hookFile)
    } else {
      await runHook(fs.readFileSync(hookFile, 'utf8'), path.resolve(hookFile))
    }
  }

  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    const command = JSON.parse(line)
    // A command that never ends (a middleware that does not pass the event on, a request
    // that gets no answer) fails the run instead of hanging it.
    const watchdog = setTimeout(() => {
      process.stderr.write(`harness: ${line} did not finish within 20 s\n`)
      process.exit(1)
    }, 20000)
    delayMs = command.delayMs || 0
    for (let i = 0; i < (command.requests || 0); i++) {
      await get(server.address().port)
    }
    for (let i = 0; i < (command.other || 0); i++) {
      await get(other.address().port)
    }
    for (let i = 0; i < (command.incoming || 0); i++) {
      await events.sendEvent({ direction: 'incoming', type: 'text', botId: 'b', payload: { text: `${i}` } })
    }
    for (let i = 0; i < (command.strange || 0); i++) {
      await events.sendEvent({ direction: 'incoming', type: 'text', botId: 'not a bot id!', payload: { text: `${i}` } })
    }
    for (let i = 0; i < (command.outgoing || 0); i++) {
      await events.sendEvent({ direction: 'outgoing', type: 'text', botId: 'b', payload: { text: `${i}` } })
    }
    for (let i = 0; i < (command.warnings || 0); i++) {
      core.forBot('b').warn(`warning ${i}`)
    }
    for (let i = 0; i < (command.errors || 0); i++) {
      core.attachError(new Error('boom')).error(`error ${i}`)
    }
    for (let i = 0; i < (command.criticals || 0); i++) {
      core.forBot('b').critical(`critical ${i}`)
    }
    clearTimeout(watchdog)
    Object.keys(totals).forEach(key => (totals[key] += command[key] || 0))
    process.stdout.write(`${JSON.stringify(totals)}\n`)
  }
  server.close()
  other.close()
  process.exit(0)
}

main().catch(err => {
  process.stderr.write(`harness: ${err.stack}\n`)
  process.exit(1)
})
