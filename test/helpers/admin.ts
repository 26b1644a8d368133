import { request } from 'node:http';
import { type RawAnswer, readAnswer } from '@wslb/testing';
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';

export type AdminAnswer = RawAnswer;

/** One request to an admin listener, on a fresh connection (no keep-alive socket left behind). */
export function adminRequest(
  port: number,
  path: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false });
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer to ${method} ${path} within 5000 ms`)),
      5000,
    );
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    req.on('response', (res) => {
      readAnswer(res).then((answer) => {
        clearTimeout(timer);
        resolve(answer);
      }, fail);
    });
    req.on('error', fail);
    req.end(body);
  });
}

export interface BackendStatus {
  id: string;
  url: string;
  state: 'up' | 'down' | 'draining';
  weight: number;
  active: number;
  total: number;
  failures: number;
  lastCheck: string | null;
}

export interface StatusBody {
  backends: BackendStatus[];
  connections: { active: number; total: number };
  uptime: number;
}

export async function getStatus(port: number, headers?: Record<string, string>): Promise<StatusBody> {
  const answer = await adminRequest(port, '/status', { headers });
  if (answer.status !== 200) throw new Error(`GET /status answered ${answer.status}: ${answer.body}`);
  return JSON.parse(answer.body) as StatusBody;
}

export async function stateOf(port: number, id: string): Promise<string | undefined> {
  return (await getStatus(port)).backends.find((b) => b.id === id)?.state;
}

/** POST /backends/:id/:action as a JSON request from a loopback client. */
export function backendAction(
  port: number,
  id: string,
  action: 'drain' | 'enable',
  headers: Record<string, string> = {},
): Promise<AdminAnswer> {
  return adminRequest(port, `/backends/${encodeURIComponent(id)}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{}',
  });
}

/** GET /metrics, parsed by a Prometheus text-format parser. */
export async function scrape(port: number, headers?: Record<string, string>): Promise<MetricFamily[]> {
  const answer = await adminRequest(port, '/metrics', { headers });
  if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}: ${answer.body}`);
  return parsePrometheusTextFormat(answer.body);
}

/** The value of one sample (labels must all match), or undefined. */
export function sample(
  families: MetricFamily[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.find((f) => f.name === name);
  const match = family?.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => (m.labels ?? {})[k] === v),
  );
  if (!match) return undefined;
  return 'value' in match ? Number(match.value) : Number(match.count);
}
