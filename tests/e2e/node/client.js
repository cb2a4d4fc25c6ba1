// A client in another language: grpc-js (Node) calling a Foundation limiter process.
//
// usage: node client.js <address> <protos dir> <third-party protos dir>
// Prints one JSON object: the health status of "" and the outcome of LimiterService/Check on a limiter that
// does not exist, with the google.rpc.Status details decoded from the `grpc-status-details-bin` trailer.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const [address, protosDir, thirdPartyDir] = process.argv.slice(2);
const deadline = () => new Date(Date.now() + 10000);

// Health by hand-encoded bytes: HealthCheckRequest{service: ""} is empty; the response is field 1, a varint.
const HEALTH_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function checkHealth(client) {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (request) => request,
      (bytes) => bytes,
      Buffer.alloc(0),
      { deadline: deadline() },
      (error, bytes) => {
        if (error) return reject(error);
        resolve(HEALTH_STATUS[bytes.length >= 2 && bytes[0] === 0x08 ? bytes[1] : 0]);
      },
    );
  });
}

function loadStatusTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(thirdPartyDir, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return { Status: root.lookupType('google.rpc.Status'), ErrorInfo: root.lookupType('google.rpc.ErrorInfo') };
}

function describeError(error, types) {
  const [details] = error.metadata.get('grpc-status-details-bin');
  const errorInfos = [];
  let detailTypes = [];
  if (details) {
    const status = types.Status.decode(details);
    detailTypes = status.details.map((any) => any.type_url.split('/').pop());
    for (const any of status.details) {
      if (any.type_url.endsWith('/google.rpc.ErrorInfo')) {
        const info = types.ErrorInfo.decode(any.value);
        errorInfos.push({ reason: info.reason, domain: info.domain });
      }
    }
  }
  return { code: grpc.status[error.code], message: error.details, detail_types: detailTypes, error_infos: errorInfos };
}

function check(stub, types) {
  return new Promise((resolve) => {
    stub.Check({ items: [{ limiter: 'limiters/absent', key: 'node' }] }, { deadline: deadline() }, (error, response) => {
      resolve(error ? describeError(error, types) : { code: 'OK', allowed: response.allowed });
    });
  });
}

async function main() {
  const definition = protoLoader.loadSync('foundation/limiter/v1/limiter.proto', {
    includeDirs: [protosDir, thirdPartyDir],
    keepCase: true,
    defaults: true,
  });
  const limiter = grpc.loadPackageDefinition(definition).foundation.limiter.v1;
  const stub = new limiter.LimiterService(address, grpc.credentials.createInsecure());
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const result = { health: await checkHealth(client), check: await check(stub, loadStatusTypes()) };
  process.stdout.write(JSON.stringify(result) + '\n');
  client.close();
  stub.close();
}

main().catch((error) => {
  process.stderr.write(`error: ${error.message}\n`);
  process.exit(1);
});
