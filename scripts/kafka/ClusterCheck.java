// Readiness check of the local three-node cluster, used only by scripts/kafka-local.sh
// (compiled once with javac into the cluster's state dir, or run as a single-file source).
//
//   java -cp '<kafka libs>/*' ClusterCheck <bootstrap> <expected broker ids, e.g. 1,2,3> <timeout s> [client.properties]
//
// The optional properties file holds the client's security settings (a secured cluster's
// admin.properties: SASL_SSL, the SCRAM login, the truststore).
// Waits until the metadata quorum has a leader (the active controller) and every expected
// broker is registered and unfenced (DescribeCluster lists only unfenced brokers), then
// prints one line "controller=<id> brokers=<ids> voters=<ids>" and exits 0. Prints the last
// state seen and exits 1 at the deadline. Uses only kafka-clients (in the broker's libs).
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.common.Node;

public class ClusterCheck {
    public static void main(String[] args) throws Exception {
        if (args.length != 3 && args.length != 4) {
            System.err.println("usage: ClusterCheck <bootstrap> <ids,...> <timeout s> [client.properties]");
            System.exit(2);
        }
        Set<Integer> expected = new TreeSet<>();
        for (String id : args[1].split(",")) expected.add(Integer.parseInt(id.trim()));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));

        Properties props = new Properties();
        if (args.length == 4) {
            try (java.io.Reader in = java.nio.file.Files.newBufferedReader(java.nio.file.Path.of(args[3]))) {
                props.load(in);
            }
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "3000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        String last = "no answer yet";
        try (Admin admin = Admin.create(props)) {
            while (true) {
                try {
                    Set<Integer> brokers = new TreeSet<>();
                    for (Node n : admin.describeCluster().nodes().get(3, TimeUnit.SECONDS)) {
                        brokers.add(n.id());
                    }
                    QuorumInfo quorum = admin.describeMetadataQuorum().quorumInfo().get(3, TimeUnit.SECONDS);
                    Set<Integer> voters = new TreeSet<>();
                    for (QuorumInfo.ReplicaState v : quorum.voters()) voters.add(v.replicaId());
                    last = "controller=" + quorum.leaderId() + " brokers=" + join(brokers) + " voters=" + join(voters);
                    if (quorum.leaderId() >= 0 && brokers.containsAll(expected)) {
                        System.out.println(last);
                        return;
                    }
                } catch (Exception e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    last = cause.getClass().getSimpleName() + ": " + cause.getMessage();
                }
                if (System.nanoTime() >= deadline) {
                    System.out.println("not ready: " + last);
                    System.exit(1);
                }
                Thread.sleep(300);
            }
        }
    }

    private static String join(Set<Integer> ids) {
        StringBuilder b = new StringBuilder();
        for (Integer id : ids) {
            if (b.length() > 0) b.append(',');
            b.append(id);
        }
        return b.toString();
    }
}
