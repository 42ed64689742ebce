"""A TCP proxy of the tests' own, on loopback, that cuts every connection
through it again and again (the kernel here has no netem). Threads, one pair
per connection; cut() closes them all at once; stall() stops every byte
(both ways, new connections too) while keeping the sockets open — a path
that vanished without a FIN — until resume()."""
import socket
import threading
import time


class CuttingProxy:
    def __init__(self, target_port, cut_every=None):
        """With cut_every, every connection is cut each time that many bytes
        have gone through: a fixed number of cuts per transfer however fast
        it runs, and none while only idle channels talk."""
        self.target = ("127.0.0.1", target_port)
        self.cut_every = cut_every
        self.forwarded = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.cuts = 0
        self.stopped = False
        self.stalled = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                while self.stalled.is_set() and not self.stopped:
                    time.sleep(0.05)
                b.sendall(data)
                if self.cut_every:
                    with self.lock:
                        self.forwarded += len(data)
                        due = self.forwarded >= self.cut_every
                        if due:
                            self.forwarded = 0
                    if due:
                        self.cut()
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            for s in (a, b):
                if s in self.conns:
                    self.conns.remove(s)
        for s in (a, b):
            s.close()

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if conns:
            self.cuts += 1

    def stall(self):
        self.stalled.set()

    def resume(self):
        self.stalled.clear()

    def close(self):
        self.stopped = True
        self.srv.close()
        self.cut()
