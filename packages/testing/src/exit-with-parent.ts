/*
 * Loaded (`node --import`) into each wslb the test kit starts: when the test process that started
 * it is gone (killed by a timeout, a Ctrl-C), the orphan exits instead of serving on, holding its
 * ports and health-checking ports that later tests reuse. The binary itself never does this: a
 * proxy started from a shell must outlive the shell.
 */
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}, 1000).unref();
