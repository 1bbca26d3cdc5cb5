package dev.skidder.peers.opensearch;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.action.admin.cluster.health.ClusterHealthResponse;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch node, run in this JVM, for skidder's Elasticsearch-output integration tests.
 *
 * <p>Contract with the callers (.ci/peers/opensearch.sh and Rust test harnesses): the only line ever
 * written to stdout is {@code READY http://127.0.0.1:<port>}, printed once the cluster is at least
 * yellow and the HTTP port has answered a request. Everything else (OpenSearch's logs, errors) goes to
 * stderr. The process runs until it is killed or, unless {@code --ignore-stdin} is given, until its
 * stdin reaches end of file, so a test harness that drops the child's stdin pipe cannot leak a node.
 *
 * <p>Options, all optional: {@code --http-port=N} (0, the default, picks a free port),
 * {@code --home=DIR} (node home and data; default a fresh temp dir removed on exit),
 * {@code --cluster-name=NAME}, {@code --ready-timeout-seconds=N} (default 120), {@code --ignore-stdin},
 * {@code --setting=KEY=VALUE} (any node setting, repeatable; e.g.
 * {@code compatibility.override_main_response_version=true} makes {@code GET /} report 7.10.2 for
 * clients that gate on an Elasticsearch version).
 */
public final class OpenSearchPeer {

    private static final String LOOPBACK = "127.0.0.1";

    /** Released by the shutdown hook once the node is closed; holds the JVM open until then. */
    private static final CountDownLatch STOPPED = new CountDownLatch(1);

    private OpenSearchPeer() {}

    /** Options given on the command line, with their defaults. */
    private record Options(
        int httpPort, Path home, String clusterName, int readyTimeoutSeconds, boolean ignoreStdin,
        Map<String, String> extraSettings) {

        static Options parse(String[] args) {
            int httpPort = 0;
            Path home = null;
            String clusterName = "skidder-peer";
            int readyTimeoutSeconds = 120;
            boolean ignoreStdin = false;
            Map<String, String> extraSettings = new LinkedHashMap<>();
            for (String arg : args) {
                int eq = arg.indexOf('=');
                String name = eq < 0 ? arg : arg.substring(0, eq);
                String value = eq < 0 ? null : arg.substring(eq + 1);
                switch (name) {
                    case "--http-port" -> httpPort = parsePort(name, required(name, value));
                    case "--home" -> home = Path.of(required(name, value)).toAbsolutePath();
                    case "--cluster-name" -> clusterName = required(name, value);
                    case "--ready-timeout-seconds" -> readyTimeoutSeconds = parsePositive(name, required(name, value));
                    case "--ignore-stdin" -> ignoreStdin = true;
                    case "--setting" -> {
                        String kv = required(name, value);
                        int sep = kv.indexOf('=');
                        if (sep <= 0) {
                            throw new UsageException("--setting needs KEY=VALUE, got '" + kv + "'");
                        }
                        extraSettings.put(kv.substring(0, sep), kv.substring(sep + 1));
                    }
                    default -> throw new UsageException("unknown option '" + arg + "'");
                }
            }
            return new Options(httpPort, home, clusterName, readyTimeoutSeconds, ignoreStdin, extraSettings);
        }

        private static String required(String name, String value) {
            if (value == null || value.isEmpty()) {
                throw new UsageException("option " + name + " needs a value: " + name + "=VALUE");
            }
            return value;
        }

        private static int parsePort(String name, String value) {
            int port = parseInt(name, value);
            if (port < 0 || port > 65535) {
                throw new UsageException(name + "=" + value + " is not a TCP port (0 picks a free one)");
            }
            return port;
        }

        private static int parsePositive(String name, String value) {
            int n = parseInt(name, value);
            if (n <= 0) {
                throw new UsageException(name + "=" + value + " must be greater than 0");
            }
            return n;
        }

        private static int parseInt(String name, String value) {
            try {
                return Integer.parseInt(value);
            } catch (NumberFormatException e) {
                throw new UsageException(name + "=" + value + " is not a whole number");
            }
        }
    }

    /** A bad command line; reported without a stack trace. */
    private static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    /**
     * Node's plugin-accepting constructor is protected; this subclass exists only to reach it, because
     * core alone has no HTTP server and Netty4Plugin must be loaded from the classpath, not a plugins dir.
     */
    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    /** Entry point; exit code 0 on a clean stop, 1 when the node could not start, 2 on a bad command line. */
    public static void main(String[] args) {
        // Keep stdout for the READY line alone; anything else that writes to System.out lands on stderr.
        PrintStream ready = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err);

        Options options;
        try {
            options = Options.parse(args);
        } catch (UsageException e) {
            System.err.println("opensearch-peer: " + e.getMessage());
            System.exit(2);
            return;
        }

        try {
            run(options, ready);
        } catch (Exception e) {
            e.printStackTrace(System.err);
            // Summary last, so the tail of the log a caller shows names the cause, not a stack frame.
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            System.err.println("opensearch-peer: node failed to start: " + e
                + (root == e ? "" : " (root cause: " + root + ")"));
            System.exit(1);
        }
    }

    private static void run(Options options, PrintStream ready) throws Exception {
        boolean ownsHome = options.home() == null;
        Path home = ownsHome ? Files.createTempDirectory("skidder-opensearch-") : options.home();
        // PluginsService scans these; they stay empty because every plugin comes from the classpath.
        Files.createDirectories(home.resolve("modules"));
        Files.createDirectories(home.resolve("plugins"));
        Files.createDirectories(home.resolve("config"));

        Settings.Builder settings = Settings.builder()
            .put("cluster.name", options.clusterName())
            .put("node.name", "skidder-peer-node")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", LOOPBACK)
            .put("http.port", Integer.toString(options.httpPort()))
            // The transport port is only used inside this one-node cluster; any free port will do.
            .put("transport.port", "0")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("discovery.type", "single-node")
            .put("action.auto_create_index", "true")
            // Temp dirs often live on a nearly full disk; watermarks would make indices read-only mid-test.
            .put("cluster.routing.allocation.disk.threshold_enabled", "false");
        // Last, so a test can override any default above; unknown keys are rejected by the node itself.
        options.extraSettings().forEach(settings::put);

        Node node;
        try {
            Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Map.of(), home.resolve("config"), () -> "skidder-peer-node");
            node = new EmbeddedNode(environment, List.of(Netty4Plugin.class));
        } catch (RuntimeException e) {
            // No shutdown hook exists yet to remove the temp home (e.g. an unknown --setting).
            if (ownsHome) {
                deleteTree(home);
            }
            throw e;
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> shutdown(node, ownsHome ? home : null), "peer-shutdown"));

        node.start();

        ClusterHealthResponse health = node.client().admin().cluster().prepareHealth()
            .setWaitForYellowStatus()
            .setTimeout(TimeValue.timeValueSeconds(options.readyTimeoutSeconds()))
            .get();
        if (health.isTimedOut()) {
            throw new IllegalStateException("cluster did not reach yellow within " + options.readyTimeoutSeconds()
                + "s; status " + health.getStatus());
        }

        TransportAddress bound = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        String url = "http://" + LOOPBACK + ":" + bound.getPort();
        awaitHttp(url, options.readyTimeoutSeconds());

        ready.println("READY " + url);

        if (!options.ignoreStdin()) {
            watchStdin();
        }
        // Every OpenSearch thread is a daemon, so without this wait the JVM would exit right here.
        // The wait ends only when the shutdown hook (signal or stdin EOF) has closed the node.
        STOPPED.await();
    }

    /** Polls the root endpoint until it answers 200, so READY promises a usable port, not just a bound one. */
    private static void awaitHttp(String url, int timeoutSeconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
        String last = "no attempt made";
        while (System.nanoTime() < deadline) {
            try {
                HttpURLConnection conn = (HttpURLConnection) URI.create(url + "/").toURL().openConnection(Proxy.NO_PROXY);
                conn.setConnectTimeout(2000);
                conn.setReadTimeout(5000);
                int code = conn.getResponseCode();
                try (InputStream body = code < 400 ? conn.getInputStream() : conn.getErrorStream()) {
                    if (body != null) {
                        body.readAllBytes();
                    }
                }
                if (code == 200) {
                    return;
                }
                last = "HTTP " + code;
            } catch (IOException e) {
                last = e.toString();
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("HTTP port " + url + " did not answer 200 within " + timeoutSeconds
            + "s; last result: " + last);
    }

    /** Exits the JVM (running the shutdown hook) once stdin is closed by whoever started us. */
    private static void watchStdin() {
        Thread watcher = new Thread(() -> {
            byte[] sink = new byte[256];
            try {
                while (System.in.read(sink) >= 0) {
                    // Input is ignored; only its end matters.
                }
            } catch (IOException e) {
                System.err.println("opensearch-peer: stdin read failed (" + e + "); stopping");
            }
            System.err.println("opensearch-peer: stdin closed; stopping");
            System.exit(0);
        }, "peer-stdin-watch");
        watcher.setDaemon(true);
        watcher.start();
    }

    private static void shutdown(Node node, Path ownedHome) {
        try {
            node.close();
            if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                System.err.println("opensearch-peer: node did not close within 30s");
            }
        } catch (IOException | InterruptedException e) {
            System.err.println("opensearch-peer: error while closing node: " + e);
        }
        if (ownedHome != null) {
            deleteTree(ownedHome);
        }
        STOPPED.countDown();
    }

    private static void deleteTree(Path root) {
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.delete(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                    Files.delete(dir);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            System.err.println("opensearch-peer: could not remove temp home " + root + ": " + e);
        }
    }
}
