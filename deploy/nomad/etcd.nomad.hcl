# A three-member etcd for nomarch, for a cluster that has none. Each member is pinned to one
# client (node meta `etcd_member` = "1", "2" or "3") and keeps its data on that client's host
# volume "etcd-data", so a member that restarts finds its data again; any one member can be
# down while the other two keep quorum.
#
# Before `nomad job run deploy/nomad/etcd.nomad.hcl`:
#   1. On three clients: Debian's etcd-server (the exec driver runs /usr/bin/etcd), a host volume
#      "etcd-data" and `meta { etcd_member = "N" }` in the client config, N = 1, 2, 3.
#   2. `initial_cluster` below set to those three clients' addresses.
# Then point nomarch at all three: etcd_endpoints=http://ADDR1:2379,http://ADDR2:2379,http://ADDR3:2379
#
# This is plain HTTP inside the cluster's network. For TLS and users, or to use an etcd you
# already run, see the README's "Running on a real cluster".

job "nomarch-etcd" {
  type        = "service"
  datacenters = ["*"]

  meta {
    initial_cluster = "etcd-1=http://10.0.0.1:2380,etcd-2=http://10.0.0.2:2380,etcd-3=http://10.0.0.3:2380"
  }

  # One member at a time, and never a member replaced while another is unhealthy.
  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "3m"
  }

  group "etcd-1" {
    # Member 1 lives on the client whose config sets meta { etcd_member = "1" }: a member
    # keeps its data on that host, so it must come back to the same one.
    constraint {
      attribute = "${meta.etcd_member}"
      value     = "1"
    }

    network {
      port "client" {
        static = 2379
      }
      port "peer" {
        static = 2380
      }
    }

    volume "data" {
      type      = "host"
      source    = "etcd-data"
      read_only = false
    }

    service {
      name     = "etcd"
      port     = "client"
      provider = "nomad"

      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "etcd" {
      driver = "exec"

      config {
        command = "/usr/bin/etcd"
        args = [
          "--name", "etcd-1",
          "--data-dir", "/var/lib/etcd/data",
          "--listen-client-urls", "http://0.0.0.0:2379",
          "--advertise-client-urls", "http://${attr.unique.network.ip-address}:2379",
          "--listen-peer-urls", "http://0.0.0.0:2380",
          "--initial-advertise-peer-urls", "http://${attr.unique.network.ip-address}:2380",
          "--initial-cluster", "${NOMAD_META_initial_cluster}",
          "--initial-cluster-token", "nomarch-etcd",
          "--initial-cluster-state", "new",
        ]
      }

      # etcd flushes and leaves the cluster cleanly on SIGTERM.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/etcd"
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }

  group "etcd-2" {
    # Member 2 lives on the client whose config sets meta { etcd_member = "2" }: a member
    # keeps its data on that host, so it must come back to the same one.
    constraint {
      attribute = "${meta.etcd_member}"
      value     = "2"
    }

    network {
      port "client" {
        static = 2379
      }
      port "peer" {
        static = 2380
      }
    }

    volume "data" {
      type      = "host"
      source    = "etcd-data"
      read_only = false
    }

    service {
      name     = "etcd"
      port     = "client"
      provider = "nomad"

      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "etcd" {
      driver = "exec"

      config {
        command = "/usr/bin/etcd"
        args = [
          "--name", "etcd-2",
          "--data-dir", "/var/lib/etcd/data",
          "--listen-client-urls", "http://0.0.0.0:2379",
          "--advertise-client-urls", "http://${attr.unique.network.ip-address}:2379",
          "--listen-peer-urls", "http://0.0.0.0:2380",
          "--initial-advertise-peer-urls", "http://${attr.unique.network.ip-address}:2380",
          "--initial-cluster", "${NOMAD_META_initial_cluster}",
          "--initial-cluster-token", "nomarch-etcd",
          "--initial-cluster-state", "new",
        ]
      }

      # etcd flushes and leaves the cluster cleanly on SIGTERM.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/etcd"
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }

  group "etcd-3" {
    # Member 3 lives on the client whose config sets meta { etcd_member = "3" }: a member
    # keeps its data on that host, so it must come back to the same one.
    constraint {
      attribute = "${meta.etcd_member}"
      value     = "3"
    }

    network {
      port "client" {
        static = 2379
      }
      port "peer" {
        static = 2380
      }
    }

    volume "data" {
      type      = "host"
      source    = "etcd-data"
      read_only = false
    }

    service {
      name     = "etcd"
      port     = "client"
      provider = "nomad"

      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "etcd" {
      driver = "exec"

      config {
        command = "/usr/bin/etcd"
        args = [
          "--name", "etcd-3",
          "--data-dir", "/var/lib/etcd/data",
          "--listen-client-urls", "http://0.0.0.0:2379",
          "--advertise-client-urls", "http://${attr.unique.network.ip-address}:2379",
          "--listen-peer-urls", "http://0.0.0.0:2380",
          "--initial-advertise-peer-urls", "http://${attr.unique.network.ip-address}:2380",
          "--initial-cluster", "${NOMAD_META_initial_cluster}",
          "--initial-cluster-token", "nomarch-etcd",
          "--initial-cluster-state", "new",
        ]
      }

      # etcd flushes and leaves the cluster cleanly on SIGTERM.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/etcd"
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}
