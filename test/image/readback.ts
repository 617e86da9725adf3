/**
 * Reading a disk image back without mounting it: the partition table (sfdisk --json), the
 * partitions cut out as files (dd, sparse), FAT files through mtools, ext4 files through debugfs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export interface Part {
  node: string;
  start: number;
  size: number;
  type: string;
  bootable?: boolean;
}

export function partitions(image: string): { label: string; id: string; partitions: Part[] } {
  const j = JSON.parse(execFileSync('sfdisk', ['--json', image], { encoding: 'utf8' })) as {
    partitiontable: { label: string; id: string; partitions: Part[] };
  };
  return j.partitiontable;
}

/** Cuts a partition out into `dir/<name>` (sparse). */
export function cut(image: string, p: Part, dir: string, name: string): string {
  const out = join(dir, name);
  execFileSync('dd', [
    `if=${image}`,
    `of=${out}`,
    'bs=1M',
    `skip=${p.start * 512}`,
    `count=${p.size * 512}`,
    'iflag=skip_bytes,count_bytes',
    'conv=sparse',
    'status=none',
  ]);
  return out;
}

export function fatList(image: string, offset: number, dir = '::'): string {
  return execFileSync('mdir', ['-b', '-i', `${image}@@${offset}`, dir], { encoding: 'utf8' });
}

export function fatRead(image: string, offset: number, file: string): Buffer {
  return execFileSync('mtype', ['-i', `${image}@@${offset}`, `::${file}`], { maxBuffer: 256 * 1024 * 1024 });
}

/** debugfs -R 'cat PATH' (the file's bytes); throws when debugfs says the file is not there. */
export function extRead(fs: string, path: string): Buffer {
  const r = spawnSync('debugfs', ['-R', `cat ${path}`, fs], { maxBuffer: 512 * 1024 * 1024 });
  const err = r.stderr.toString();
  if (r.status !== 0 || /not found|File not found/i.test(err)) throw new Error(`debugfs cat ${path}: ${err}`);
  return r.stdout;
}

export function extStat(fs: string, path: string): string {
  return execFileSync('debugfs', ['-R', `stat ${path}`, fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function extList(fs: string, dir: string): string[] {
  return execFileSync('debugfs', ['-R', `ls -p ${dir}`, fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .split('\n')
    .map((l) => l.split('/')[5] ?? '')
    .filter((n) => n && n !== '.' && n !== '..');
}

export function extDump(fs: string, path: string, out: string): void {
  execFileSync('debugfs', ['-R', `dump ${path} ${out}`, fs], { stdio: 'ignore' });
}

/** exit status of a read-only check (e2fsck -fn, fsck.vfat -n) with its output */
export function check(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
