// One status line on stderr for long runs: what is running, how many of how
// many measurements are done, and when the rest should be, from the average
// so far.
'use strict';

function clock(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

class Progress {
  constructor(total, label) {
    this.total = total;
    this.done = 0;
    this.label = label;
    this.start = Date.now();
    this.tty = process.stderr.isTTY;
  }

  /** Marks one measurement done; `what` names the next. */
  step(what) {
    this.done++;
    const elapsed = Date.now() - this.start;
    const eta = this.done > 0 ? (elapsed / this.done) * (this.total - this.done) : 0;
    const line = `  ${this.label} ${this.done}/${this.total}, ${clock(elapsed)} elapsed, ETA ${clock(eta)}${what ? `: ${what}` : ''}`;
    // On a terminal one line is rewritten; in a log every tenth and the last stay.
    if (this.tty) process.stderr.write(`\r${line.slice(0, 118).padEnd(118)}`);
    else if (this.done % 10 === 0 || this.done === this.total) process.stderr.write(`${line}\n`);
  }

  end() {
    if (this.tty) process.stderr.write('\n');
  }
}

module.exports = { Progress, clock };
