/**
 * `NODE_OPTIONS=--require <this file>` with ACKSTREAM_PROFILE_DIR set: the process profiles itself
 * (the inspector's CPU profiler, in process) and writes `<pid>-<script>.cpuprofile` there when it
 * exits, or at once on SIGUSR2 (bench/stack-profile.ts sends it before stopping the stack: a
 * process that is killed while it shuts down, or whose exit takes longer than the stop allows,
 * still leaves its profile). Node 20 refuses `--cpu-prof` in NODE_OPTIONS, and `npm start` spawns
 * its services itself: this reaches every node process of the stack (bench/stack-profile.ts).
 */
'use strict';
const inspector = require('node:inspector');
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.ACKSTREAM_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // An in-process session answers synchronously: the profile is written before the process ends.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      const script = (process.argv[1] ?? 'node').split('/').slice(-2).join('_').replace(/[^\w.-]/g, '_');
      fs.writeFileSync(path.join(dir, `${process.pid}-${script}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  process.on('exit', write);
  process.on('SIGUSR2', write);
}
