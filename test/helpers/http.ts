import { request } from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The JSON body of an echo backend: who served the request and what it received. */
  json<T = { backend: string; headers: Record<string, string | undefined> }>(): T;
}

/** One plain HTTP request on a fresh connection (no keep-alive handle left behind). */
export function httpGet(
  url: string,
  headers: Record<string, string> = {},
  { localAddress, timeoutMs = 5000 }: { localAddress?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: <T>() => JSON.parse(body) as T,
        });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer from ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** The `name=value` part of the Set-Cookie line for `name`, if the answer has one. */
export function setCookie(answer: HttpAnswer | { headers: HttpAnswer['headers'] }, name: string) {
  const lines = answer.headers['set-cookie'];
  const list = Array.isArray(lines) ? lines : lines ? [lines] : [];
  const line = list.find((l) => l.startsWith(`${name}=`));
  return line ? { pair: line.split(';')[0]!, line } : undefined;
}
