// BullMQ side of the benchmark suite. One mode per process; prints one line "BENCH_RESULT {json}".
//
//   node bench.js <mode> '<json options>'
//
// Modes (options: host, port, queue, seconds, payload (JSON text), and per mode):
//   addBulk  `inflight` concurrent loops of queue.addBulk(`batch` jobs)          -> jobs added/s
//   add      `inflight` concurrent loops of queue.add(one job)                  -> jobs added/s, latency
//   prefill  add `count` jobs with addBulk (not timed), then exit
//   work     one Worker with `concurrency`, a no-op processor                  -> jobs completed/s
//            (active_seconds: until the last completion, for a queue that ran dry before the end)
//
// Jobs are removed when completed (removeOnComplete), as an acked message is in our service. The
// harness (bench/peers/bullmq_peer.py) installs the npm packages under bench/.cache and sets NODE_PATH.
'use strict';

const { Queue, Worker } = require('bullmq');

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function report(result) {
  process.stdout.write('BENCH_RESULT ' + JSON.stringify(result) + '\n');
}

async function producers(queue, o, bulk) {
  const data = JSON.parse(o.payload);
  const batch = bulk ? o.batch || 100 : 1;
  const jobs = Array.from({ length: batch }, () => ({ name: 'job', data }));
  const latencies = [];
  let added = 0;
  let failed = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(o.seconds * 1e9));
  async function loop() {
    while (process.hrtime.bigint() < deadline) {
      const t0 = process.hrtime.bigint();
      try {
        if (bulk) await queue.addBulk(jobs);
        else await queue.add('job', data);
        added += batch;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (err) {
        failed += 1;
      }
    }
  }
  await Promise.all(Array.from({ length: o.inflight }, loop));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    jobs: added, failed, seconds, rate: added / seconds,
    p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99),
  };
}

async function prefill(queue, o) {
  const data = JSON.parse(o.payload);
  let left = o.count;
  const started = process.hrtime.bigint();
  async function loop() {
    while (left > 0) {
      const n = Math.min(1000, left);
      left -= n;
      await queue.addBulk(Array.from({ length: n }, () => ({ name: 'job', data })));
    }
  }
  await Promise.all(Array.from({ length: 8 }, loop));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { jobs: o.count, seconds, rate: o.count / seconds };
}

async function work(connection, o) {
  let completed = 0;
  let failed = 0;
  let last = process.hrtime.bigint();
  const worker = new Worker(o.queue, async () => null, {
    connection, concurrency: o.concurrency || 50, autorun: false,
    removeOnComplete: { count: 0 }, removeOnFail: { count: 0 },
  });
  worker.on('completed', () => {
    completed += 1;
    last = process.hrtime.bigint();
  });
  worker.on('failed', () => { failed += 1; });
  worker.on('error', () => { failed += 1; });
  await worker.waitUntilReady();
  const started = process.hrtime.bigint();
  worker.run();
  await new Promise((resolve) => setTimeout(resolve, o.seconds * 1000));
  const done = completed;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const active = Math.max(0, Number(last - started) / 1e9);
  await worker.close(true);
  return { jobs: done, failed, seconds, active_seconds: active, rate: done / seconds };
}

async function main() {
  const mode = process.argv[2];
  const o = JSON.parse(process.argv[3] || '{}');
  const connection = { host: o.host || '127.0.0.1', port: o.port || 6379, maxRetriesPerRequest: null };
  const queue = new Queue(o.queue, {
    connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  await queue.waitUntilReady();
  let result;
  if (mode === 'addBulk') result = await producers(queue, o, true);
  else if (mode === 'add') result = await producers(queue, o, false);
  else if (mode === 'prefill') result = await prefill(queue, o);
  else if (mode === 'work') result = await work(connection, o);
  else throw new Error('unknown mode ' + mode);
  result.waiting = await queue.getWaitingCount();
  await queue.close();
  report({ mode, ...result });
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + '\n');
    process.exit(1);
  },
);
