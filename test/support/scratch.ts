// Temporary directories a test file makes, removed when the file's tests end,
// so `npm test` leaves nothing behind in the system's temp directory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Call at a test file's top level; the function it returns makes a directory under os.tmpdir(). */
export function scratchDirs(): (prefix: string) => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  return (prefix) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}
