// The HTTP flood of the fault suite: POST /v1/registrations at a fixed offered rate
// from many connections for a fixed time, each request a new participant. autocannon
// (a maintained HTTP load generator) sends far more per second than a Python client
// on the same two cores could.
//
//   node flood.mjs <json options>
//   options: url, seminar_id, token, rate (requests/s over all connections),
//            connections, seconds, prefix (participant ids)
//
// Prints one JSON object: answers by status ("201", "503 Retry-After", ...), transport
// errors and timeouts, the participants whose request was accepted (2xx), and how
// many requests went out (answered, failed or timed out) per second.
import autocannon from 'autocannon'

const options = JSON.parse(process.argv[2])
const answers = {}
const accepted = []
let sequence = 0

function count (key) {
  answers[key] = (answers[key] || 0) + 1
}

const instance = autocannon({
  url: options.url,
  connections: options.connections,
  duration: options.seconds,
  // rate 0: a closed loop, each connection sending its next request when answered.
  ...(options.rate > 0 ? { overallRate: options.rate } : {}),
  timeout: 60,
  requests: [{
    method: 'POST',
    path: '/v1/registrations',
    headers: {
      authorization: `Bearer ${options.token}`,
      'content-type': 'application/json'
    },
    // One connection has one request in flight (no pipelining), so the connection's
    // context names the participant its answer is about.
    setupRequest (request, context) {
      context.participant = `${options.prefix}-${sequence++}`
      return {
        ...request,
        body: JSON.stringify({
          seminar_id: options.seminar_id,
          participant: { id: context.participant }
        })
      }
    },
    onResponse (status, body, context, headers) {
      const retryAfter = headers['retry-after'] !== undefined
      count(`${status}${retryAfter ? ' Retry-After' : ''}`)
      if (status >= 200 && status < 300) accepted.push(context.participant)
    }
  }]
}, (error, result) => {
  if (error) {
    console.error(error)
    process.exit(2)
  }
  // Counted from the answers, not autocannon's own "sent", which under a rate limit
  // also counts requests it scheduled but never wrote before the time was up.
  const answered = Object.values(answers).reduce((sum, n) => sum + n, 0)
  const sent = answered + result.errors + result.timeouts
  process.stdout.write(JSON.stringify({
    answers,
    accepted,
    errors: result.errors,
    timeouts: result.timeouts,
    sent,
    seconds: result.duration,
    per_s: Math.round(sent / result.duration)
  }) + '\n')
})
process.once('SIGINT', () => instance.stop())
