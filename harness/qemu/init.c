// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the QEMU initramfs: mount the basics, load test_hmm_intervals.ko,
 * run the program named by hmi.run= on the kernel command line (selftest,
 * demo or bench), unload the module, power off; or, for hmi.run=rdma, run
 * /rdma-test.sh with busybox sh (it loads and unloads rdma_rxe itself).
 * Lines starting with "HMI-INIT:" are read by harness/qemu.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void)
{
	char cmdline[1024] = "", *mode;
	char *selftest[] = { "/hmm_intervals_tests", NULL };
	char *demo[] = { "/hmm_intervals_demo", NULL };
	char *bench[] = { "/hmm_intervals_bench", NULL };
	char *rdma[] = { "/bin/sh", "/rdma-test.sh", NULL };
	int fd, rc;
	ssize_t n;

	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open("/proc/cmdline", O_RDONLY);
	n = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;
	cmdline[n > 0 ? n : 0] = 0;
	mode = strstr(cmdline, "hmi.run=demo") ? "demo" :
	       strstr(cmdline, "hmi.run=bench") ? "bench" :
	       strstr(cmdline, "hmi.run=rdma") ? "rdma" : "selftest";
	if (!strcmp(mode, "rdma")) {
		rc = run(rdma);
		printf("HMI-INIT: %s exit %d\n", mode, rc);
		goto out;
	}

	/* Huge pages for the hugetlbfs case. */
	fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
	if (fd < 0 || write(fd, "8", 1) != 1)
		printf("HMI-INIT: cannot reserve huge pages: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);

	fd = open("/test_hmm_intervals.ko", O_RDONLY);
	if (fd < 0 || syscall(SYS_finit_module, fd, "", 0)) {
		printf("HMI-INIT: insmod failed: %s\n", strerror(errno));
		goto out;
	}
	close(fd);
	printf("HMI-INIT: insmod ok\n");

	rc = run(!strcmp(mode, "demo") ? demo :
		 !strcmp(mode, "bench") ? bench : selftest);
	printf("HMI-INIT: %s exit %d\n", mode, rc);

	/*
	 * Right after the last file closed: its release ran
	 * mmu_range_tracker_fini(), the barrier, so nothing of the module may
	 * still be referenced and a non-blocking unload must succeed.
	 */
	if (syscall(SYS_delete_module, "test_hmm_intervals", O_NONBLOCK))
		printf("HMI-INIT: rmmod failed: %s\n", strerror(errno));
	else
		printf("HMI-INIT: rmmod ok\n");
out:
	printf("HMI-INIT: done\n");
	sync();
	/* Without ACPI there is no power off: reboot, and QEMU -no-reboot exits. */
	reboot(RB_AUTOBOOT);
	return 0;
}
