import type { ServerResponse } from 'node:http';
import type { ProblemError } from '../../core/errors';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
}

export function sendProblem(res: ServerResponse, problem: ProblemError, instance?: string): void {
  res.writeHead(problem.status, { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...problem.headers });
  res.end(JSON.stringify(problem.toProblem(instance)));
}
