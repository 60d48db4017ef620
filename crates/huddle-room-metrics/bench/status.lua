-- wrk script: status posts from one joined standalone participant (Basic auth).
-- AUTH must hold the Authorization value printed by `--example room-setup`;
-- wrk itself reports answers other than 2xx as "Non-2xx or 3xx responses".
wrk.method = "POST"
wrk.body = '{"action":"status","event":"Session.streamCreated","state":"sendrecv","connections":2,"sendStreams":1,"recvStreams":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH")
