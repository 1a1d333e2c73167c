// Drives eureka-js-client (the npm Eureka client) against a8's registry, as test/e2e/eureka_test.go
// runs it: register, heartbeats, a full fetch, then deltas (ADDED, DELETED, for an instance
// registered through Eureka and one registered through a8's own API), and, after the test restarts
// the registry (this script prints RESTART and waits for a line on stdin), re-registration on the
// heartbeat's 404. Lines starting "ok:" mark each step; FAIL ends it with exit status 1.
'use strict';
const {Eureka} = require('eureka-js-client');
const http = require('http');
const readline = require('readline');

const port = parseInt(process.env.PORT, 10);
const log = (...a) => console.log(...a);
const quiet = {debug() {}, info() {}, warn: (...a) => log('WARN', ...a.map(String)), error: (...a) => log('ERROR', ...a.map(String))};
const client = new Eureka({
  logger: quiet, shouldUseDelta: true,
  instance: {
    app: 'demo', instanceId: 'demo-1', hostName: 'localhost', ipAddr: '127.0.0.1', vipAddress: 'demo',
    port: {'$': 8080, '@enabled': true},
    metadata: {'amalgam8.tags': 'version=v1'},
    dataCenterInfo: {'@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn'},
  },
  eureka: {host: '127.0.0.1', port, servicePath: '/eureka/apps/', heartbeatInterval: 300, registryFetchInterval: 300, maxRetries: 0},
});
let deltas = 0;
const fetchDelta = client.fetchDelta.bind(client);
client.fetchDelta = (cb) => { deltas++; fetchDelta(cb); };

function waitFor(what, cond, ms = 20000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const i = setInterval(() => {
      if (cond()) {
        clearInterval(i);
        log('ok:', what);
        resolve();
      } else if (Date.now() - t0 > ms) {
        clearInterval(i);
        reject(new Error('timed out waiting for ' + what));
      }
    }, 50);
  });
}

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({host: '127.0.0.1', port, method, path, headers: body ? {'Content-Type': 'application/json'} : {}}, (resp) => {
      let data = '';
      resp.on('data', (x) => { data += x; });
      resp.on('end', () => resolve([resp.statusCode, data]));
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

const lines = readline.createInterface({input: process.stdin});
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

(async () => {
  client.start((err) => { if (err) log('start error:', err.message || err); });
  await waitFor('own instance in the full fetch', () => client.getInstancesByAppId('DEMO').length === 1);

  const other = {instance: {app: 'OTHER', instanceId: 'other-1', hostName: 'h2', ipAddr: '127.0.0.2', vipAddress: 'other',
    port: {'$': '9090', '@enabled': 'true'}, dataCenterInfo: {name: 'MyOwn'}}};
  const [s1] = await request('POST', '/eureka/v2/apps/OTHER', JSON.stringify(other));
  if (s1 !== 204) throw new Error('register OTHER: ' + s1);
  await waitFor('OTHER added by a delta', () => client.getInstancesByAppId('OTHER').length === 1 && deltas > 0);

  const native = {service_name: 'native', endpoint: {type: 'http', value: '10.1.1.1:80'}, tags: ['version=v2'], ttl: 60};
  const [s2] = await request('POST', '/api/v1/instances', JSON.stringify(native));
  if (s2 !== 201) throw new Error('register native: ' + s2);
  await waitFor('an instance registered through a8\'s API added by a delta', () => client.getInstancesByVipAddress('native').length === 1);

  const [s3] = await request('DELETE', '/eureka/apps/OTHER/other-1');
  if (s3 !== 200) throw new Error('cancel OTHER: ' + s3);
  await waitFor('OTHER deleted by a delta', () => client.getInstancesByAppId('OTHER').length === 0);

  log('RESTART');
  await nextLine(); // the registry was restarted, with nothing in it
  let back = false;
  await waitFor('own instance registered again after the restart', () => {
    request('GET', '/eureka/apps/DEMO/demo-1').then(([s]) => { back = s === 200; }, () => {});
    return back;
  });
  client.stop(() => { log('ok: stopped (deregistered)'); process.exit(0); });
})().catch((e) => { log('FAIL', e.message); process.exit(1); });
