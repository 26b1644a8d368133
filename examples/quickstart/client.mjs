// Opens 6 WebSockets through the quickstart proxy, echoes a message on each and prints which
// backend served it.
import { closeAll, openClient, roundTrip } from '@wslb/testing';

const url = process.argv[2] ?? 'ws://127.0.0.1:8080/';
const clients = [];
for (let i = 1; i <= 6; i++) {
  const client = await openClient(url);
  const echo = await roundTrip(client.ws, `hello ${i}`);
  console.log(`socket ${i}: backend ${client.backend}, echo "${echo.data.toString()}"`);
  clients.push(client);
}
await closeAll(clients);
