/** The console's static page, script and style (ack-service/console/static/): public, they hold no data. */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { MethodNotAllowedError } from '../../core/errors';

const ASSETS: Record<string, { file: string; type: string }> = {
  '/console': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};
const ASSET_DIR = path.join(__dirname, 'static');

/** Answers a static asset's path (read once, then kept); false for any other path. */
export function staticAssets(): (req: IncomingMessage, res: ServerResponse, pathname: string) => boolean {
  const loaded = new Map<string, Buffer>();
  const load = (file: string) => {
    let b = loaded.get(file);
    if (!b) loaded.set(file, (b = readFileSync(path.join(ASSET_DIR, file))));
    return b;
  };
  return (req, res, pathname) => {
    const file = ASSETS[pathname];
    if (!file) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(`${pathname} answers GET only.`, 'GET, HEAD');
    res.writeHead(200, {
      'Content-Type': file.type,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
    });
    res.end(req.method === 'HEAD' ? undefined : load(file.file));
    return true;
  };
}
