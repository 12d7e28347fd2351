// The alertd feed as a Botpress v12 module. A module runs with the server's rights, outside
// the hook sandbox, so it counts all six counters. It runs the feed hook's own code
// (alertd_feed.js: beside this file in the packed module, or in the repository's hooks
// folder) as Botpress runs a global hook outside the sandbox, once the HTTP server is ready.
'use strict'

const fs = require('fs')
const path = require('path')

const candidates = [
  path.join(__dirname, 'alertd_feed.js'),
  path.join(__dirname, '../../../hooks/after_server_start/alertd_feed.js')
]

function feedSource() {
  const found = candidates.find(file => fs.existsSync(file))
  if (!found) {
    throw new Error(`alertd feed: alertd_feed.js is missing (looked at ${candidates.join(', ')})`)
  }
  return { file: found, code: fs.readFileSync(found, 'utf8') }
}

module.exports = {
  definition: {
    name: 'alertd-feed',
    fullName: 'alertd feed',
    noInterface: true
  },
  onServerReady: async bp => {
    const { code } = feedSource()
    const feed = new Function('bp', 'process', 'printObject', 'require', code)
    await feed(bp, process, value => value, require)
  }
}
