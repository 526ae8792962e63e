package io.kgrec.launcher;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Starts a real Neo4j Community DBMS with a Bolt connector on 127.0.0.1.
 *
 * <p>Arguments: {@code --port N --data-dir DIR [--exit-on-stdin-eof]}. The password of the
 * {@code neo4j} user is read from the {@code KGREC_NEO4J_PASSWORD} environment variable (never
 * from argv, so it does not show in process listings). Once Bolt accepts connections it prints
 * {@code KGREC_NEO4J_READY bolt://127.0.0.1:PORT} on stdout. It shuts the DBMS down cleanly on
 * SIGTERM/SIGINT, or when stdin closes if {@code --exit-on-stdin-eof} is given (so a test run
 * that dies never leaves an orphaned JVM behind).
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        int port = 7687;
        Path dataDir = null;
        boolean exitOnEof = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--data-dir" -> dataDir = Path.of(args[++i]).toAbsolutePath();
                case "--exit-on-stdin-eof" -> exitOnEof = true;
                default -> fail("unknown argument: " + args[i]);
            }
        }
        if (dataDir == null) {
            fail("--data-dir is required");
        }
        String password = System.getenv("KGREC_NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            fail("KGREC_NEO4J_PASSWORD must be set to at least 8 characters");
        }
        if (!portIsFree(port)) {
            fail("port " + port + " on 127.0.0.1 is already in use");
        }

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(dataDir)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, 128L * 1024 * 1024)
                .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stopped.countDown();
        }, "kgrec-neo4j-shutdown"));

        try {
            dbms.database("system").executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            // a restart on an existing data folder with the same password is fine; anything else is not
            String msg = String.valueOf(e.getMessage());
            if (!msg.contains("cannot be the same")) {
                System.err.println("kgrec-neo4j-launcher: could not set the password: " + msg);
                System.exit(1); // the shutdown hook stops the DBMS: no JVM is left behind
            }
        }

        System.out.println("KGREC_NEO4J_READY bolt://127.0.0.1:" + port);
        System.out.flush();

        if (exitOnEof) {
            InputStream in = System.in;
            try {
                while (in.read() != -1) {
                    // drain; the parent closing the pipe is our signal to stop
                }
            } catch (IOException ignored) {
                // treat a broken pipe like EOF
            }
            System.exit(0);
        }
        stopped.await();
    }

    private static boolean portIsFree(int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(true); // TIME_WAIT leftovers are not a listener
            socket.bind(new InetSocketAddress("127.0.0.1", port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void fail(String message) {
        System.err.println("kgrec-neo4j-launcher: " + message);
        System.exit(2);
    }
}
