// The lazypod JVM test server: a tiny HTTP server on the JDK's own com.sun.net.httpserver, for
// measuring how lazypod serve copes with a slow-starting, memory-hungry runtime. It listens on
// 0.0.0.0:$PORT (8080 by default) and answers 200 "jvm\n" at / and 404 elsewhere.
//
// scripts/build-rootfs-images.sh compiles it with the host's javac (Debian's
// openjdk-17-jdk-headless) and puts Server.class in /app of localhost/lazypod-jvm:latest, whose
// command is: java -cp /app Server
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public class Server {
    public static void main(String[] args) throws IOException {
        String portEnv = System.getenv("PORT");
        int port = portEnv == null || portEnv.isEmpty() ? 8080 : Integer.parseInt(portEnv);
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 0);
        byte[] body = "jvm\n".getBytes(StandardCharsets.UTF_8);
        server.createContext("/", (HttpExchange ex) -> {
            try (ex) {
                ex.getRequestBody().readAllBytes();
                if (!ex.getRequestURI().getPath().equals("/")) {
                    ex.sendResponseHeaders(404, -1);
                    return;
                }
                ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
                if (ex.getRequestMethod().equals("HEAD")) {
                    ex.sendResponseHeaders(200, -1);
                    return;
                }
                ex.sendResponseHeaders(200, body.length);
                try (OutputStream out = ex.getResponseBody()) {
                    out.write(body);
                }
            }
        });
        server.start();
        System.err.printf("jvmserver listening on 0.0.0.0:%d%n", port);
    }
}
