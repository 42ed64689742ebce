"""A TLS terminator of the tests' own on loopback: clients speak https/wss to
it with a CA the test made; it speaks plain HTTP to pierd. asyncio, in a
thread of its own (one event loop, so no SSL object is shared by threads)."""
import asyncio
import os
import ssl
import subprocess
import threading


def make_ca(directory, names=("localhost",), ips=("127.0.0.1",)):
    """A CA and a server certificate for names/ips, made with openssl(1).
    Returns (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, cert = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(directory, "san.ext")
    with open(ext, "w") as f:
        alt = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % alt)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=pier e2e test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=%s" % names[0])
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class TlsProxy:
    def __init__(self, cert, key, target_port=0):
        self.target_port = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.handshakes = 0
        started = threading.Event()

        def main():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx))
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        started.wait(10)

    async def _serve(self, reader, writer):
        self.handshakes += 1
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(r, w):
            try:
                while True:
                    data = await r.read(1 << 16)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                try:
                    w.close()
                except Exception:
                    pass
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    def close(self):
        def stop():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)
